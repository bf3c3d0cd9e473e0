"""Time grids for the samplers."""

from __future__ import annotations

import torch
from torch import Tensor


def uniform_grid(steps: int, t_start: float = 1.0, t_end: float = 0.0) -> Tensor:
    """``steps + 1`` evenly spaced times from ``t_start`` (noise) to ``t_end`` (data), float64."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    return torch.linspace(t_start, t_end, steps + 1, dtype=torch.float64)
