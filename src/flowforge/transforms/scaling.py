"""NICE's diagonal scaling layer."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .base import Transform, check_event


class Scaling(Transform):
    r"""Diagonal scaling :math:`y = x \odot e^{s}` with a learned ``s`` of the event shape, initialised to 0
    (Dinh et al., 2015, arXiv:1410.8516, §3.3): it lets NICE's volume-preserving couplings weight dimensions.
    ``log|det J| = sum(s)``, the same for every example.

    Arguments:
        event_shape: ``(D,)`` or ``(C, H, W)``.

    Shapes: (batch, *event_shape) -> (batch, *event_shape), logdet (batch,).

    Example:
        >>> layer = Scaling((2,))
        >>> with torch.no_grad():
        ...     _ = layer.log_scale.copy_(torch.tensor([0.0, 1.0]))
        >>> y, logdet = layer(torch.ones(1, 2))
        >>> [round(v, 4) for v in y.flatten().tolist()], logdet.tolist()
        ([1.0, 2.7183], [1.0])
    """

    def __init__(self, event_shape: Sequence[int]):
        super().__init__()
        self.event_shape = tuple(int(n) for n in event_shape)
        self.log_scale = nn.Parameter(torch.zeros(self.event_shape))  # s

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        check_event("Scaling", x, self.event_shape)
        y = x * torch.exp(self.log_scale)
        return y, self.log_scale.sum().expand(x.shape[0])

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        check_event("Scaling", y, self.event_shape)
        x = y * torch.exp(-self.log_scale)
        return x, (-self.log_scale.sum()).expand(y.shape[0])
