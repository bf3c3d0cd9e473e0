"""CIFAR-10 from its binary version (no pickle): 32x32 RGB, 256 levels, 10 classes.

Each ``.bin`` batch is a run of 3,073-byte records: one label byte (0..9), then
1,024 red, 1,024 green and 1,024 blue bytes, each plane row-major, so a record
reshapes straight to ``(3, 32, 32)``.
"""

from __future__ import annotations

import tarfile
import zlib
from pathlib import Path

import numpy as np
import torch

from flowforge.config import DataConfig
from flowforge.data.base import Dataset
from flowforge.data.downloads import Remote, cache_root, download
from flowforge.data.errors import DataError
from flowforge.data.intensity import model_range, scale_levels

# SHA-256 as in tensorflow-datasets (url_checksums/cifar10.txt, 170,052,171 bytes),
# torch.rb's CIFAR-10 loader and gomlx's CIFAR downloader.
CIFAR10 = Remote("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
                 "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd")
CIFAR10_FOLDER = "cifar10"
BATCH_DIR = "cifar-10-batches-bin"
SPLITS = {"train": tuple(f"data_batch_{i}.bin" for i in range(1, 6)), "test": ("test_batch.bin",)}
IMAGE_SHAPE = (3, 32, 32)
RECORD_BYTES = 1 + 3 * 32 * 32
CLASSES = 10
EIGHT_BIT_LEVELS = 256


def parse_batch(data: bytes, source: str) -> tuple[np.ndarray, np.ndarray]:
    """``(images (n, 3, 32, 32) uint8, labels (n,) int64)`` from one binary batch."""
    if not data or len(data) % RECORD_BYTES:
        raise DataError(
            f"{source}: {len(data)} bytes is not a whole number of {RECORD_BYTES}-byte records; "
            f"the file is truncated or corrupt: delete it and download it again"
        )
    records = np.frombuffer(data, dtype=np.uint8).reshape(-1, RECORD_BYTES)  # (n, 3073)
    labels = records[:, 0].astype(np.int64)
    if labels.max() >= CLASSES:
        row = int((labels >= CLASSES).argmax())
        raise DataError(f"{source}: record {row} has label {labels[row]} (expected 0..9); the file is corrupt")
    return records[:, 1:].reshape(-1, *IMAGE_SHAPE), labels


def read_archive(path: Path) -> dict[str, bytes]:
    """The batch files' bytes, read from ``cifar-10-binary.tar.gz`` without extracting it."""
    batches = {}
    try:
        with tarfile.open(path, "r:gz") as tar:
            for name in (n for names in SPLITS.values() for n in names):
                try:
                    member = tar.extractfile(f"{BATCH_DIR}/{name}")
                except KeyError:
                    member = None
                if member is None:
                    raise DataError(f"{path}: has no {BATCH_DIR}/{name}; this is not the CIFAR-10 binary archive")
                batches[name] = member.read()
    except (tarfile.TarError, OSError, EOFError, zlib.error) as err:
        raise DataError(f"{path}: truncated or corrupt archive ({err}); delete it and download it again") from None
    return batches


def read_folder(folder: Path) -> dict[str, bytes]:
    """The batch files' bytes from an already extracted ``cifar-10-batches-bin`` folder."""
    return {name: (folder / name).read_bytes() for names in SPLITS.values() for name in names}


def find_batches(cfg: DataConfig) -> tuple[dict[str, bytes], str]:
    """Batches from the cache (extracted folder or archive), else downloaded; and their source."""
    folder = cache_root(cfg.cache_dir) / CIFAR10_FOLDER
    extracted, archive = folder / BATCH_DIR, folder / CIFAR10.filename
    if all((extracted / n).is_file() for names in SPLITS.values() for n in names):
        return read_folder(extracted), str(extracted)
    if not archive.is_file():
        if not cfg.download:
            raise DataError(
                f"CIFAR-10 not found and data.download is false: put {CIFAR10.filename} "
                f"(from {CIFAR10.url}) into {folder}, or set data.download=true"
            )
        download(CIFAR10, archive)
    return read_archive(archive), str(archive)


def load_cifar10(cfg: DataConfig) -> Dataset:
    """CIFAR-10's official splits (50,000 / 10,000) as ``(N, 3, 32, 32)`` in ``cfg.image_range``."""
    batches, source = find_batches(cfg)
    split = {}
    for which, names in SPLITS.items():
        parts = [parse_batch(batches[name], f"{source}: {name}") for name in names]
        images = np.concatenate([p[0] for p in parts])  # (N, 3, 32, 32) uint8
        labels = np.concatenate([p[1] for p in parts])  # (N,)
        split[which] = (torch.from_numpy(scale_levels(images, EIGHT_BIT_LEVELS, cfg.image_range)),
                        torch.from_numpy(labels))
    return Dataset(
        name="cifar10",
        kind="image",
        train=split["train"][0],
        test=split["test"][0],
        levels=EIGHT_BIT_LEVELS,
        value_range=model_range(cfg.image_range),
        train_labels=split["train"][1],
        test_labels=split["test"][1],
    )
