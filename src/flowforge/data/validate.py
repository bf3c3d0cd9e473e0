"""Checks every loader runs on raw numpy arrays before they become tensors.

Each check raises :class:`DataError` naming the source, the first bad row and
what to do; ``row_name`` lets a reader say "line 7" (CSV) instead of "row 5".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from flowforge.data.errors import DataError


def zero_based_row(i: int) -> str:
    return f"row {i} (0-based)"


@dataclass(frozen=True)
class Rows:
    """Examples as read from a file, ``(N, ...)``, and how to name row ``i`` in a message."""

    values: np.ndarray
    row_name: Callable[[int], str] = zero_based_row


def check_not_empty(x: np.ndarray, source: str) -> None:
    """Raise unless ``x`` holds at least one example with at least one value."""
    if x.ndim == 0 or len(x) == 0:
        raise DataError(f"{source}: no examples found; the data set needs at least one row")
    if x.size == 0:
        raise DataError(f"{source}: examples have shape {x.shape[1:]} with no values; check the file's contents")


def check_finite(x: np.ndarray, source: str, row_name: Callable[[int], str] = zero_based_row) -> None:
    """Raise at the first NaN or infinity in ``x`` of shape ``(N, ...)``, naming its row and position."""
    if not np.issubdtype(x.dtype, np.floating):
        return
    bad = ~np.isfinite(x.reshape(len(x), -1))  # (N, prod(shape))
    if not bad.any():
        return
    row = int(bad.any(axis=1).argmax())
    flat = int(bad[row].argmax())
    value = x.reshape(len(x), -1)[row, flat]
    if x.ndim == 2:
        where = f"column {flat}" if row_name is zero_based_row else f"column {flat + 1}"
    else:
        where = f"position {tuple(int(i) for i in np.unravel_index(flat, x.shape[1:]))}"
    raise DataError(
        f"{source}: {row_name(row)} holds {value} at {where}; "
        f"NaN and infinity cannot be modelled: fix or remove that row"
    )


def check_labels(labels: np.ndarray, n: int, source: str) -> None:
    """Raise unless ``labels`` is ``(n,)`` of non-negative integers."""
    if labels.shape != (n,):
        raise DataError(f"{source}: expected {n} labels, found shape {labels.shape}; the label file does not match")
    if not np.issubdtype(labels.dtype, np.integer) or (n and labels.min() < 0):
        raise DataError(f"{source}: labels must be non-negative integers; the label file is corrupt")
