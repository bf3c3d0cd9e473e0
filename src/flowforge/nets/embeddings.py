"""Embeddings of scalar conditioning (time, noise level)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class SinusoidalEmbedding(nn.Module):
    """Fixed sinusoidal features of a scalar, as in the Transformer / DDPM.

    .. math:: e(t)_k = [\\cos(s t \\omega_k), \\sin(s t \\omega_k)], \\quad \\omega_k = 10000^{-k / (d/2)}

    ``scale`` maps the scalar's natural range to the range the frequencies were
    designed for (DDPM feeds integer steps 0..1000, so ``t`` in [0, 1] uses 1000).

    Arguments:
        dim: output size, even.
        scale: factor applied to the input before the features.

    Shapes: ``t`` (batch,) -> (batch, dim).
    """

    def __init__(self, dim: int, scale: float = 1000.0, max_period: float = 10000.0):
        super().__init__()
        if dim % 2:
            raise ValueError(f"embedding dim must be even, got {dim}")
        half = dim // 2
        freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
        self.register_buffer("freqs", freqs, persistent=False)
        self.scale = scale

    def forward(self, t: Tensor) -> Tensor:
        args = (self.scale * t.float())[:, None] * self.freqs[None]  # (B, dim/2)
        return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)  # (B, dim)
