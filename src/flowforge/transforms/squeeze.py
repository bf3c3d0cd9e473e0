"""Space-to-depth reshaping of RealNVP's multi-scale architecture, and its inverse."""

from __future__ import annotations

import torch
from torch import Tensor

from .base import Transform


def _check_image(name: str, x: Tensor) -> None:
    if x.dim() != 4:
        raise ValueError(f"{name} expects images of shape (batch, C, H, W); got {tuple(x.shape)}")


def _space_to_depth(name: str, x: Tensor) -> Tensor:
    _check_image(name, x)
    b, c, h, w = x.shape
    if h % 2 or w % 2:
        raise ValueError(f"{name} needs even height and width; got H={h}, W={w} (input shape {tuple(x.shape)})")
    x = x.reshape(b, c, h // 2, 2, w // 2, 2)  # (B, C, H/2, 2, W/2, 2)
    x = x.permute(0, 1, 3, 5, 2, 4)  # (B, C, 2, 2, H/2, W/2)
    return x.reshape(b, 4 * c, h // 2, w // 2)  # channel c * 4 + 2 * i + j holds pixel (2h' + i, 2w' + j)


def _depth_to_space(name: str, y: Tensor) -> Tensor:
    _check_image(name, y)
    b, c4, h, w = y.shape
    if c4 % 4:
        raise ValueError(f"{name} needs a channel count divisible by 4; got {c4} (input shape {tuple(y.shape)})")
    y = y.reshape(b, c4 // 4, 2, 2, h, w)  # (B, C, 2, 2, H, W)
    y = y.permute(0, 1, 4, 2, 5, 3)  # (B, C, H, 2, W, 2)
    return y.reshape(b, c4 // 4, 2 * h, 2 * w)


def _zeros(x: Tensor) -> Tensor:
    return torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)


class Squeeze(Transform):
    r"""Space to depth: each 2x2 block of pixels becomes 4 channels,
    (batch, C, H, W) -> (batch, 4C, H/2, W/2) (Dinh et al., 2017, arXiv:1605.08803, §3.6, Fig. 3).
    A permutation of the entries, so ``log|det J| = 0``. :class:`Unsqueeze` is its inverse.

    Channel ``4c + 2i + j`` of the output holds pixel ``(2h + i, 2w + j)`` of input channel ``c``
    (the ordering of Glow's ``squeeze2d``).

    Example:
        >>> y, _ = Squeeze()(torch.arange(4.0).reshape(1, 1, 2, 2))
        >>> y.flatten().tolist(), tuple(y.shape)
        ([0.0, 1.0, 2.0, 3.0], (1, 4, 1, 1))
    """

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return _space_to_depth("Squeeze", x), _zeros(x)

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        return _depth_to_space("Squeeze.inverse", y), _zeros(y)


class Unsqueeze(Transform):
    r"""Depth to space, the inverse of :class:`Squeeze`: (batch, 4C, H, W) -> (batch, C, 2H, 2W), logdet 0.
    Ends a multi-scale level so that the flow's output has the input's shape.

    Example:
        >>> x = torch.randn(2, 3, 4, 6)
        >>> torch.equal(Unsqueeze()(Squeeze()(x)[0])[0], x)
        True
    """

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return _depth_to_space("Unsqueeze", x), _zeros(x)

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        return _space_to_depth("Unsqueeze.inverse", y), _zeros(y)
