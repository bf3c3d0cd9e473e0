"""Positions of image patches on a 2-D grid, and their fixed 2-D sin-cos encoding.

Both position encodings of :class:`flowforge.nets.dit.DiT` (absolute sin-cos and rotary) read the same
coordinates, :func:`grid_positions`: patch ``(i, j)`` of an ``h x w`` grid sits at
``(i * H0 / h, j * W0 / w)``, in units of the patches of a *reference* grid ``H0 x W0`` (the training
resolution). At the reference resolution these are the integer positions of DiT; an image at half the
resolution sees the positions of every second patch of the full one, so the same place in a resized image
gets the same code at every resolution (the interpolated positions of PixArt-alpha, arXiv:2310.00426, Sec. 2.4).

References:
    Vaswani et al. (2017). Attention Is All You Need. https://arxiv.org/abs/1706.03762
    He et al. (2022). Masked Autoencoders Are Scalable Vision Learners (2-D sin-cos table).
    https://arxiv.org/abs/2111.06377
    Peebles, Xie (2023). Scalable Diffusion Models with Transformers. https://arxiv.org/abs/2212.09748
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def grid_positions(height: int, width: int, reference: tuple[int, int] | None = None,
                   device: torch.device | None = None) -> Tensor:
    """Coordinates ``(row, column)`` of the patches of an ``height x width`` grid, in row-major token order.

    .. math:: p_{ij} = (i \\, H_0 / h, \\; j \\, W_0 / w)

    Arguments:
        height, width: the grid ``h x w`` (image size divided by the patch size).
        reference: the grid ``(H0, W0)`` whose patches are the unit; ``None`` means ``(h, w)`` itself,
            i.e. integer positions.

    Shapes: -> (h * w, 2) float32.

    Example:
        >>> grid_positions(2, 3)
        tensor([[0., 0.],
                [0., 1.],
                [0., 2.],
                [1., 0.],
                [1., 1.],
                [1., 2.]])
        >>> grid_positions(2, 2, reference=(4, 4))[:, 0].tolist()
        [0.0, 0.0, 2.0, 2.0]
    """
    ref_h, ref_w = reference if reference is not None else (height, width)
    rows = torch.arange(height, dtype=torch.float32, device=device) * (ref_h / height)  # (h,)
    cols = torch.arange(width, dtype=torch.float32, device=device) * (ref_w / width)  # (w,)
    return torch.stack(torch.meshgrid(rows, cols, indexing="ij"), dim=-1).reshape(-1, 2)  # (h w, 2)


def sincos_1d(pos: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """The Transformer's fixed encoding of a scalar position: ``[sin(p w_k), cos(p w_k)]``.

    .. math:: \\omega_k = \\text{max\\_period}^{-k / (d/2)}, \\quad k = 0, \\dots, d/2 - 1

    Shapes: ``pos`` (L,) -> (L, dim); ``dim`` even.
    """
    if dim % 2:
        raise ValueError(f"sin-cos encoding needs an even dimension, got {dim}")
    half = dim // 2
    omega = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=pos.device) / half)
    angles = pos.float()[:, None] * omega[None]  # (L, dim/2)
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)  # (L, dim)


def sincos_2d(positions: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Fixed 2-D sin-cos encoding (MAE, DiT): the first half of the channels encodes the row, the second the column.

    .. math:: e(p) = [\\mathrm{sc}_{d/2}(p_\\text{row}), \\; \\mathrm{sc}_{d/2}(p_\\text{col})]

    (DiT's ``get_2d_sincos_pos_embed`` puts the column first; the two differ by a fixed permutation of channels.)

    Shapes: ``positions`` (L, 2) -> (L, dim); ``dim`` divisible by 4.

    Example:
        >>> table = sincos_2d(grid_positions(4, 4), 8)
        >>> table.shape, bool(torch.equal(sincos_2d(grid_positions(2, 2, reference=(4, 4)), 8), table[[0, 2, 8, 10]]))
        (torch.Size([16, 8]), True)
    """
    if dim % 4:
        raise ValueError(f"2-D sin-cos encoding needs a dimension divisible by 4, got {dim}")
    rows = sincos_1d(positions[:, 0], dim // 2, max_period)  # (L, dim/2)
    cols = sincos_1d(positions[:, 1], dim // 2, max_period)  # (L, dim/2)
    return torch.cat([rows, cols], dim=-1)  # (L, dim)


__all__ = ["grid_positions", "sincos_1d", "sincos_2d"]
