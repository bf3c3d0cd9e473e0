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


def zero_module(module: nn.Module) -> nn.Module:
    """``module`` with every parameter set to zero (it starts as a no-op branch)."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


def add_interval(emb: Tensor, interval_embed: nn.Module | None, interval: Tensor | None) -> Tensor:
    """A time embedding ``emb`` (B, D) plus the embedding of an average-velocity model's interval ``t - r`` (B,).

    MeanFlow conditions its network on ``(t, t - r)`` (Geng et al., 2025, arXiv:2505.13447, Table 1c). A net
    built without an interval embedding refuses one; a net built with one treats a missing interval as 0
    (``r = t``: the instantaneous velocity).
    """
    if interval_embed is None:
        if interval is not None:
            raise ValueError("an interval t - r was given to a net built without one (interval=False)")
        return emb
    if interval is None:
        interval = torch.zeros(emb.shape[0], device=emb.device, dtype=emb.dtype)
    return emb + interval_embed(interval)
