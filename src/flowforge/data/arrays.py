"""Data from array files: ``.npy``, ``.npz`` and numeric ``.csv``, one example per row."""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from flowforge.config import DataConfig
from flowforge.data.base import Dataset
from flowforge.data.csvfile import read_csv
from flowforge.data.errors import DataError
from flowforge.data.intensity import model_range, scale_levels
from flowforge.data.split import holdout
from flowforge.data.validate import Rows, check_finite, check_not_empty

EIGHT_BIT_LEVELS = 256
UNREADABLE = (ValueError, OSError, EOFError, zipfile.BadZipFile)


def read_npy(path: Path, key: str | None) -> Rows:
    """The array in a ``.npy`` file (never unpickled)."""
    try:
        return Rows(np.load(path, allow_pickle=False))
    except UNREADABLE as err:
        raise DataError(f"{path}: cannot read ({err}); save a plain numeric array with numpy.save") from None


def _choose_key(path: Path, keys: list[str], key: str | None) -> str:
    if key is None:
        if len(keys) == 1:
            return keys[0]
        listed = ", ".join(keys) or "none"
        raise DataError(f"{path}: holds {len(keys)} arrays ({listed}); choose one with data.key=NAME")
    if key not in keys:
        raise DataError(f"{path}: no array named {key!r}; data.key must be one of: {', '.join(keys)}")
    return key


def read_npz(path: Path, key: str | None) -> Rows:
    """The array named ``key`` in a ``.npz`` file, or its only array when ``key`` is None."""
    try:
        archive = np.load(path, allow_pickle=False)
    except UNREADABLE as err:
        raise DataError(f"{path}: cannot read ({err}); save plain numeric arrays with numpy.savez") from None
    with archive:
        name = _choose_key(path, list(archive.files), key)
        try:
            return Rows(archive[name])
        except UNREADABLE as err:
            raise DataError(f"{path}: cannot read array {name!r} ({err}); save it again with numpy.savez") from None


def read_csv_file(path: Path, key: str | None) -> Rows:
    """A numeric CSV file (``key`` does not apply)."""
    return read_csv(path)


READERS: dict[str, Callable[[Path, str | None], Rows]] = {
    ".npy": read_npy,
    ".npz": read_npz,
    ".csv": read_csv_file,
}


def read_array(path: Path, key: str | None) -> Rows:
    """Read any supported array file, choosing the reader by suffix; values are integers or floats."""
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise DataError(f"{path}: unsupported file type {path.suffix!r}; use one of {', '.join(READERS)}")
    if not path.is_file():
        raise DataError(f"{path}: file not found; set data.path to an existing {', '.join(READERS)} file")
    rows = reader(path, key)
    if rows.values.dtype == np.bool_:
        rows = Rows(rows.values.astype(np.float32), rows.row_name)
    if not (np.issubdtype(rows.values.dtype, np.integer) or np.issubdtype(rows.values.dtype, np.floating)):
        raise DataError(f"{path}: holds {rows.values.dtype} values; save real numbers (integers or floats)")
    return rows


def example_shape(values: np.ndarray, image_shape: list[int] | None, source: str) -> tuple[int, ...]:
    """Per-example shape: ``image_shape`` if given (sizes must agree), else ``(D,)`` or ``(C, H, W)``."""
    if image_shape is not None:
        if len(image_shape) != 3:
            raise DataError(f"data.image_shape: got {image_shape!r}, expected [channels, height, width]")
        row_size, wanted = int(np.prod(values.shape[1:])), int(np.prod(image_shape))
        if row_size != wanted:
            raise DataError(
                f"{source}: each row holds {row_size} values (shape {values.shape[1:]}) but "
                f"data.image_shape={list(image_shape)} needs {wanted}; fix data.image_shape or the file"
            )
        return tuple(image_shape)
    if values.ndim == 2:
        return values.shape[1:]
    if values.ndim == 4:
        if values.shape[1] > 4 and values.shape[3] in (1, 3):
            raise DataError(
                f"{source}: shape {values.shape} looks channels-last (N, H, W, C); "
                f"save x.transpose(0, 3, 1, 2) to get (N, C, H, W)"
            )
        return values.shape[1:]
    hint = {
        1: "save x[:, None] for 1-D points",
        3: "for (N, H, W) images set data.image_shape=[1, H, W]",
    }.get(values.ndim, "set data.image_shape=[C, H, W] to read each row as an image")
    raise DataError(f"{source}: shape {values.shape} is neither points (N, D) nor images (N, C, H, W); {hint}")


def to_image_space(values: np.ndarray, cfg: DataConfig, source: str) -> tuple[np.ndarray, int | None]:
    """``(images, levels)``: 8-bit integers scaled to the model range; floats kept as given."""
    if not np.issubdtype(values.dtype, np.integer):
        return values.astype(np.float32), None
    lo, hi = int(values.min()), int(values.max())
    if lo < 0 or hi > EIGHT_BIT_LEVELS - 1:
        raise DataError(
            f"{source}: integer images must hold 8-bit values 0..255, found {lo}..{hi}; "
            f"save uint8 images, or floats already in the model range"
        )
    return scale_levels(values, EIGHT_BIT_LEVELS, cfg.image_range), EIGHT_BIT_LEVELS


def load_array(cfg: DataConfig) -> Dataset:
    """Rows of an array file as points ``(N, D)`` or images ``(N, C, H, W)``, with a seeded 10% test split.

    Integer images must be 8-bit (0..255) and are scaled to ``cfg.image_range``
    with ``levels = 256``; float images are taken as already in model space.
    """
    if not cfg.path:
        raise DataError("data.path: the 'array' data set reads a file; set data.path=/path/to/data.npy")
    path = Path(cfg.path).expanduser()
    rows = read_array(path, cfg.key)
    values, source = rows.values, str(path)
    check_not_empty(values, source)
    check_finite(values, source, rows.row_name)
    shape = example_shape(values, cfg.image_shape, source)
    values = values.reshape(len(values), *shape)
    kind = "image" if len(shape) == 3 else "points"
    levels, value_range = None, None
    if kind == "image":
        values, levels = to_image_space(values, cfg, source)
        value_range = model_range(cfg.image_range)
    train, test = holdout(len(values), cfg.seed, source)
    data = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))  # (N, *shape)
    return Dataset(path.name, kind, data[train], data[test], levels=levels, value_range=value_range)
