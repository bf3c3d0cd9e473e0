"""Tabular CSV data for density estimation, with optional context columns: pairs ``(x, c)`` for ``p(x | c)``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from flowforge.config import DataConfig
from flowforge.data.base import Dataset
from flowforge.data.csvfile import read_csv, read_header
from flowforge.data.errors import DataError
from flowforge.data.split import holdout
from flowforge.data.validate import check_finite, check_not_empty


def context_indices(header: list[str] | None, context_columns: list[str] | None, source: str) -> list[int]:
    """Positions of the ``context_columns`` in the CSV ``header``; a DataError naming the missing ones.

    Example:
        >>> context_indices(["x", "y", "theta"], ["theta"], "f.csv")
        [2]
    """
    if not context_columns:
        return []
    if header is None:
        raise DataError(f"{source}: data.context_columns names columns, but the file has no header row; add one")
    missing = [c for c in context_columns if c not in header]
    if missing:
        raise DataError(f"{source}: data.context_columns {missing} are not in the header ({', '.join(header)})")
    if len(set(context_columns)) == len(header):
        raise DataError(f"{source}: every column is a context column; leave at least one data column")
    return [header.index(c) for c in context_columns]


def load_tabular(cfg: DataConfig) -> Dataset:
    """Rows of a numeric CSV file (``data.path``) as points ``(N, D)``, the columns named in
    ``data.context_columns`` split off as their context ``(N, C)``; a seeded 10% test split. Values are used as
    they are: standardise the columns beforehand if their scales differ (the spline tails start at
    ``model.flow.tail_bound``)."""
    if not cfg.path:
        raise DataError("data.path: the 'tabular' data set reads a CSV file; set data.path=/path/to/table.csv")
    path = Path(cfg.path).expanduser()
    if not path.is_file():
        raise DataError(f"{path}: file not found; set data.path to an existing CSV file")
    rows, source = read_csv(path), str(path)
    values = rows.values.astype(np.float64)
    check_not_empty(values, source)
    check_finite(values, source, rows.row_name)
    ctx = context_indices(read_header(path), cfg.context_columns, source)
    keep = [i for i in range(values.shape[1]) if i not in ctx]
    train, test = holdout(len(values), cfg.seed, source)
    x = torch.from_numpy(np.ascontiguousarray(values[:, keep], dtype=np.float32))  # (N, D)
    c = torch.from_numpy(np.ascontiguousarray(values[:, ctx], dtype=np.float32)) if ctx else None  # (N, C)
    return Dataset(path.name, "points", x[train], x[test], train_context=c[train] if c is not None else None,
                   test_context=c[test] if c is not None else None)


__all__ = ["context_indices", "load_tabular"]
