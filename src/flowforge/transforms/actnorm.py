"""Glow's activation normalisation with data-dependent initialisation."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .base import Transform, check_channels, pooled_moments


class ActNorm(Transform):
    r"""Per-channel affine map :math:`y = (x + b) \odot e^{\log s}` (Kingma & Dhariwal, 2018, arXiv:1807.03039,
    §3.1, Table 1), with ``log|det J| = H W \sum_c \log s_c`` for images and ``\sum_d \log s_d`` for vectors.

    Data-dependent initialisation: the first ``forward`` in training mode sets ``b = -mean`` and
    ``log s = -log(std + eps)`` of that batch, per channel (statistics over batch, H, W for images; over the
    batch for vectors), so the batch comes out with zero mean and unit variance per channel. When
    ``torch.distributed`` is initialised the statistics are pooled over all processes so every replica starts
    from the same parameters. The ``initialized`` buffer records that this happened, and travels with
    ``state_dict`` so a loaded model is never re-initialised.

    Arguments:
        num_channels: size of dim 1 (``C`` of (batch, C, H, W) or ``D`` of (batch, D)).
        eps: added to the standard deviation (Glow's 1e-6).

    Shapes: (batch, C, *spatial) -> same, logdet (batch,).

    Example:
        >>> layer = ActNorm(3)
        >>> y, logdet = layer(5 + 2 * torch.randn(1000, 3))
        >>> y.mean(0).abs().max().item() < 1e-5, bool(layer.initialized)
        (True, True)
    """

    def __init__(self, num_channels: int, eps: float = 1e-6):
        super().__init__()
        self.num_channels = int(num_channels)
        self.eps = eps
        self.bias = nn.Parameter(torch.zeros(self.num_channels))  # b
        self.log_scale = nn.Parameter(torch.zeros(self.num_channels))  # log s
        self.register_buffer("initialized", torch.tensor(0, dtype=torch.uint8))

    def _per_channel(self, p: Tensor, x: Tensor) -> Tensor:
        return p.reshape(1, -1, *([1] * (x.dim() - 2)))  # (1, C, 1, ...)

    @torch.no_grad()
    def _initialize(self, x: Tensor) -> None:
        xc = x.transpose(0, 1).reshape(self.num_channels, -1)  # (C, N)
        mean, std = pooled_moments(xc, "ActNorm", "values per channel", tuple(x.shape))
        self.bias.copy_(-mean)
        self.log_scale.copy_(-torch.log(std + self.eps))
        self.initialized.fill_(1)

    def _spatial(self, x: Tensor) -> int:
        return math.prod(x.shape[2:])

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        check_channels("ActNorm", x, self.num_channels, ndims=(2, 4))
        if self.training and not self.initialized.item():
            self._initialize(x)
        y = (x + self._per_channel(self.bias, x)) * torch.exp(self._per_channel(self.log_scale, x))
        return y, (self._spatial(x) * self.log_scale.sum()).expand(x.shape[0])

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        check_channels("ActNorm", y, self.num_channels, ndims=(2, 4))
        x = y * torch.exp(-self._per_channel(self.log_scale, y)) - self._per_channel(self.bias, y)
        return x, (-self._spatial(y) * self.log_scale.sum()).expand(y.shape[0])
