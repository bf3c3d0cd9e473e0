"""The small grey-image CNN behind the "mnist", "fashion-mnist" and "digits" extractors.

The architecture is the ``DigitCNN`` of the ``ccexam`` package (v1.0.0,
``ccexam/models.py``), re-defined here with the same parameter names so that its
pretrained MNIST state dict loads as it is, without importing ccexam (which needs
torchvision):

    conv 3x3, 1 -> 32, pad 1 · ReLU · max-pool 2 · conv 3x3, 32 -> 64, pad 1 · ReLU · max-pool 2
    · flatten (64 (S/4)^2) · linear -> 128 · ReLU · linear -> 10

Input: ``[0, 1]`` pixels ``(B, 1, S, S)``, normalised as ``(x - mean) / std`` (ccexam:
MNIST's 0.1307 / 0.3081, as its ``torchvision`` transform ``ToTensor`` then
``Normalize`` does). Features are the 128 ReLU activations before the last layer.
The Fashion-MNIST and digits networks are this architecture trained by
``tools/train_feature_nets.py``; their normalisation and input size are stored
in the metadata of their ``.safetensors`` files.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

FEATURE_DIM = 128
NUM_CLASSES = 10


class DigitCNN(nn.Module):
    """ccexam's DigitCNN for ``(B, 1, input_size, input_size)`` images; ``input_size`` divisible by 4."""

    def __init__(self, input_size: int, mean: float, std: float):
        super().__init__()
        if input_size % 4:
            raise ValueError(f"input_size must be divisible by 4 (two 2x2 poolings), got {input_size}")
        self.input_size, self.mean, self.std = input_size, mean, std
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Linear(64 * (input_size // 4) ** 2, FEATURE_DIM), nn.ReLU(), nn.Linear(FEATURE_DIM, NUM_CLASSES)
        )

    def forward(self, pixels01: Tensor) -> tuple[Tensor, Tensor]:
        """``(features (B, 128), logits (B, 10))`` of ``[0, 1]`` images ``(B, 1, S, S)``."""
        h = self.features((pixels01 - self.mean) / self.std).flatten(1)  # (B, 64 (S/4)^2)
        feats = self.classifier[1](self.classifier[0](h))  # (B, 128)
        return feats, self.classifier[2](feats)  # (B, 128), (B, 10)


# ccexam/constants.py: the MNIST statistics its transform normalises with
CCEXAM_MNIST_MEAN, CCEXAM_MNIST_STD = 0.1307, 0.3081


def load_ccexam_mnist(path: Path) -> DigitCNN:
    """ccexam's pretrained MNIST network from its ``weights/mnist.pth`` (a plain state dict, loaded without pickle)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    net = DigitCNN(28, CCEXAM_MNIST_MEAN, CCEXAM_MNIST_STD)
    net.load_state_dict(state)
    return net.eval()


# The header holds one metadata entry, a JSON object with sorted keys: safetensors writes several entries
# in an arbitrary order, which would change the file's bytes (and its pinned SHA-256) from run to run.
META_KEY = "flowforge_digit_cnn"


def save_digit_cnn(net: DigitCNN, path: Path, **metadata: str) -> None:
    """Write ``net`` as safetensors with its input size and normalisation (and ``metadata``) in the header."""
    meta = {"input_size": net.input_size, "mean": net.mean, "std": net.std, **metadata}
    tensors = {k: v.detach().contiguous() for k, v in net.state_dict().items()}
    save_file(tensors, str(path), metadata={META_KEY: json.dumps(meta, sort_keys=True)})


def load_digit_cnn(path: Path) -> DigitCNN:
    """A :class:`DigitCNN` from a file written by :func:`save_digit_cnn`."""
    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()[META_KEY])
    net = DigitCNN(int(meta["input_size"]), float(meta["mean"]), float(meta["std"]))
    net.load_state_dict(load_file(str(path)))
    return net.eval()
