"""Uniform dequantization: a continuous density on [0, 1]^D for data with ``levels`` discrete values.

A pixel with integer value ``k`` in ``{0, ..., L-1}`` becomes ``y = (k + u) / L`` with ``u ~ U[0, 1)``.
For any density ``p`` on ``[0, 1]^D``, ``log P(k) >= E_u[log p(y)] - D log L`` (Theis et al., 2016,
arXiv:1511.01844, §3.1), so ``E_u[-log p(y)] + D log L`` bounds the discrete code length, and bits/dim is
that divided by ``D ln 2``. With ``L = 256`` this is NICE's protocol (data in [0, 1], noise of width 1/256),
whose MNIST figure is ``log p(y)`` in nats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Quantization:
    """Data whose values are the ``levels`` evenly spaced points of ``[lo, hi]``."""

    levels: int
    lo: float
    hi: float

    def to_levels(self, x: Tensor) -> Tensor:
        """Integer level ``k`` (as float) of each value of ``x``."""
        k = torch.round((x - self.lo) / (self.hi - self.lo) * (self.levels - 1))
        return k.clamp(0, self.levels - 1)

    def dequantize(self, x: Tensor, u: Tensor) -> Tensor:
        """``y = (k + u) / L`` in [0, 1): ``u`` is uniform noise of ``x``'s shape."""
        return (self.to_levels(x) + u) / self.levels

    def center(self, x: Tensor) -> Tensor:
        """The middle of each value's bin, ``(k + 1/2) / L``: a deterministic point inside [0, 1)."""
        return (self.to_levels(x) + 0.5) / self.levels

    def from_unit(self, y: Tensor) -> Tensor:
        """The data value whose bin contains ``y`` in [0, 1] (the discrete sample of a dequantized model)."""
        k = torch.floor(y * self.levels).clamp(0, self.levels - 1)
        return self.lo + (self.hi - self.lo) * k / (self.levels - 1)

    @classmethod
    def from_spec(cls, data: dict) -> "Quantization | None":
        """The discretisation described by a run's data spec (``levels``, ``value_range``), or None."""
        if data.get("levels") is None or data.get("value_range") is None:
            return None
        lo, hi = data["value_range"]
        return cls(levels=int(data["levels"]), lo=float(lo), hi=float(hi))

    def log_bin_volume(self, dims: int) -> float:
        """``-D log L``: log volume of one cell of the grid in [0, 1]^D."""
        return -dims * math.log(self.levels)
