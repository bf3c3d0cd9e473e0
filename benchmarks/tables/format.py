"""Number formats and markdown helpers that every table module shares; only the standard library."""

from __future__ import annotations

import math
import re


def sig(x: float, digits: int = 3) -> str:
    """``x`` to ``digits`` significant digits, trailing zeros kept, never in exponent notation:
    0.0000316, 0.0370, 1.68."""
    if x == 0 or not math.isfinite(x):
        return f"{x:g}"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(x))))
    return f"{x:.{decimals}f}"


def short(x: float) -> str:
    """At most 3 decimals and 3 significant digits: 0.048, 0.454, 3.41, 217."""
    return f"{x:.3f}" if abs(x) < 1 else f"{x:.3g}"


def bold_min(cells: list[str], values: list[float | None]) -> list[str]:
    """Bold the cells holding the smallest shown value (ties, as printed, all bold)."""
    shown = [float(c.split()[0]) if v is not None else math.inf for c, v in zip(cells, values)]
    best = min(shown)
    return [f"**{c}**" if v is not None and s == best else c for c, v, s in zip(cells, values, shown)]


def table(header: list[str], rows: list[list[str]], align: list[str]) -> str:
    """A markdown table; ``align`` holds ``---`` or ``---:`` per column."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def clean_table(text: str) -> str:
    """Empty cells written ``| |``, as in the rest of the README (``|  |`` twice over for runs of them)."""
    return "\n".join(re.sub(r"\|  (?=\|)", "| ", line) for line in text.splitlines())


def bold_columns(rows: list[list[str]], values: list[list[float | None]], columns: list[int]) -> None:
    """Bold the best cell of each column index in ``columns`` (over ``rows``, in place)."""
    for j in columns:
        for r, c in zip(rows, bold_min([r[j] for r in rows], [v[j] for v in values])):
            r[j] = c


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    mean = sum(values) / len(values)
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1) if len(values) > 1 else 0.0
    return mean, math.sqrt(var)
