"""Numeric CSV files: one example per line, comma-separated, one optional header row.

The fast path is :func:`numpy.loadtxt`; only when it fails is the file scanned
line by line to name the first cell that is not a number.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from flowforge.data.errors import DataError
from flowforge.data.validate import Rows


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _data_lines(path: Path) -> Iterator[tuple[int, list[str]]]:
    """``(line_number, cells)`` of every non-blank, non-comment line, header included; 1-based."""
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            text = line.strip()
            if text and not text.startswith("#"):
                yield number, [cell.strip() for cell in text.split(",")]


def _first_line(path: Path) -> tuple[int, list[str]]:
    try:
        return next(_data_lines(path))
    except StopIteration:
        raise DataError(f"{path}: the CSV file has no rows; it needs one example per line") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a UTF-8 text file; save the data as numeric CSV, .npy or .npz") from None


def _locate_bad_cell(path: Path, header: bool, reason: str) -> DataError:
    """The error for the first ragged line or non-numeric cell after the header."""
    lines = _data_lines(path)
    if header:
        next(lines)
    width, first = None, None
    for number, cells in lines:
        if width is None:
            width, first = len(cells), number
        elif len(cells) != width:
            return DataError(
                f"{path}: line {number} has {len(cells)} columns but line {first} has {width}; "
                f"every row needs the same number of values"
            )
        for column, cell in enumerate(cells, start=1):
            if not _is_number(cell):
                return DataError(
                    f"{path}: line {number}, column {column}: {cell!r} is not a number; "
                    f"CSV data must be numeric (only the first row may be a header)"
                )
    return DataError(f"{path}: cannot read as numeric CSV ({reason}); check the file's format")


def _row_namer(path: Path, header: bool) -> Callable[[int], str]:
    def row_name(i: int) -> str:
        lines = _data_lines(path)
        for index, (number, _) in enumerate(lines, start=-1 if header else 0):
            if index == i:
                return f"line {number}"
        return f"data row {i}"

    return row_name


def read_header(path: Path) -> list[str] | None:
    """The column names of the first row, when it is a header (holds no number); else None."""
    _, cells = _first_line(path)
    return None if any(_is_number(cell) for cell in cells) else cells


def read_csv(path: Path) -> Rows:
    """Read ``path`` as ``(N, D)`` values, int64 if every cell is an integer literal, else float64.

    A first row without any number in it is a header and is skipped. The rows'
    names in error messages are the file's line numbers.
    """
    header_line, cells = _first_line(path)
    header = not any(_is_number(cell) for cell in cells)
    values = None
    for dtype in (np.int64, np.float64):
        try:
            values = np.loadtxt(path, delimiter=",", skiprows=header_line if header else 0,
                                dtype=dtype, ndmin=2, encoding="utf-8")
            break
        except ValueError as err:
            reason = str(err)
    if values is None:
        raise _locate_bad_cell(path, header, reason)
    if len(values) == 0:
        raise DataError(f"{path}: the CSV file has a header but no data rows; add one example per line")
    return Rows(values, _row_namer(path, header))
