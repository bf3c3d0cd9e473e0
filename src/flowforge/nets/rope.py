"""2-D rotary position embeddings (RoPE) for attention over image patches.

RoPE rotates each query and key by an angle proportional to its position, so the score of a query at
``p`` and a key at ``p'`` depends on ``p - p'`` only: attention sees relative positions, and a model trained
at one resolution can be run at another without a table to interpolate. In 2-D the head dimension is split
in two: the first half rotates with the row coordinate, the second half with the column coordinate.

References:
    Su et al. (2021). RoFormer: Enhanced Transformer with Rotary Position Embedding. https://arxiv.org/abs/2104.09864
    Heo et al. (2024). Rotary Position Embedding for Vision Transformer (2-D axial RoPE).
    https://arxiv.org/abs/2403.13298
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class Rotation:
    """The rotations of one set of positions, built once per forward and applied in every attention layer.

    ``cos`` and ``sin`` have shape ``(L, 2, d/4)``: token, axis (row, column), frequency.
    """

    cos: Tensor
    sin: Tensor

    def __call__(self, x: Tensor) -> Tensor:
        """Rotate queries or keys. Shapes: ``x`` (..., L, d) -> (..., L, d)."""
        *lead, length, dim = x.shape
        wide = torch.promote_types(x.dtype, torch.float32)  # bf16 rotates in float32, float64 stays float64
        parts = x.to(wide).reshape(*lead, length, 2, 2, dim // 4)  # (..., L, axis, half, d/4)
        x1, x2 = parts.unbind(-2)  # 2 x (..., L, axis, d/4): the pairs (x1_k, x2_k) rotate together
        out = torch.stack([x1 * self.cos - x2 * self.sin, x1 * self.sin + x2 * self.cos], dim=-2)  # (..., L, 2, 2, d/4)
        return out.reshape(*lead, length, dim).to(x.dtype)  # (..., L, d)


class RotaryEmbedding2d(nn.Module):
    """Axial 2-D RoPE: the rotations of a head of size ``d`` at positions ``(row, column)``.

    In each half of the head, channel ``k`` pairs with channel ``k + d/4`` (``k < d/4``); the ``k``-th pair of
    the first half is rotated by the angle ``row * theta_k``, that of the second half by ``col * theta_k``, with

    .. math:: \\theta_k = b^{-k / (d/4)}, \\quad k = 0, \\dots, d/4 - 1

    so that :math:`\\langle R_p q, R_{p'} k \\rangle = \\langle q, R_{p' - p} k \\rangle` for any positions.

    Arguments:
        head_dim: size ``d`` of one attention head, divisible by 4.
        base: ``b``, the longest wavelength in positions (RoFormer: 10000).

    Shapes: ``positions`` (L, 2) float -> :class:`Rotation` with ``cos``, ``sin`` (L, 2, d/4).

    Example:
        >>> rope = RotaryEmbedding2d(8)
        >>> q = torch.randn(5, 8)
        >>> rot = rope(torch.tensor([[0.0, 0.0]] * 5))
        >>> bool(torch.equal(rot(q), q))  # position zero: no rotation
        True
    """

    def __init__(self, head_dim: int, base: float = 10000.0):
        super().__init__()
        if head_dim % 4:
            raise ValueError(f"2-D rotary embeddings need a head dimension divisible by 4, got {head_dim}")
        quarter = head_dim // 4
        theta = torch.exp(-math.log(base) * torch.arange(quarter, dtype=torch.float32) / quarter)  # (d/4,)
        self.register_buffer("theta", theta, persistent=False)
        self.head_dim = head_dim

    def forward(self, positions: Tensor) -> Rotation:
        wide = torch.promote_types(self.theta.dtype, torch.float32)  # float64 in a float64 model, else float32
        angles = positions.to(wide)[:, :, None] * self.theta.to(wide)  # (L, 2, d/4)
        return Rotation(torch.cos(angles), torch.sin(angles))


__all__ = ["RotaryEmbedding2d", "Rotation"]
