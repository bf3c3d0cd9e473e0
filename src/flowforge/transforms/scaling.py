"""NICE's diagonal scaling layer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn

from .base import Transform, check_event, pooled_moments


class Scaling(Transform):
    r"""Diagonal scaling :math:`y = x \odot e^{s}` with a learned ``s`` of the event shape (Dinh et al., 2015,
    arXiv:1410.8516, §3.3): it lets NICE's volume-preserving couplings weight dimensions.
    ``log|det J| = sum(s)``, the same for every example.

    ``init="zero"`` starts from ``s = 0``, as the paper does. ``init="data"`` sets ``s`` from the first
    ``forward`` in training mode so that batch comes out with standard deviation ``target_std`` in every
    dimension, as Glow's ActNorm does (statistics pooled over processes under ``torch.distributed``). Why it
    matters: Adam moves each ``s_i`` by about the learning rate per step, while MNIST's background pixels,
    whose only spread is the dequantization noise (std 1/(256 sqrt 12)), need ``s_i`` near 7; from zero that
    alone takes thousands of steps. The ``initialized`` buffer travels with ``state_dict``, so a loaded model
    is never re-initialised; a state dict saved before the buffer existed loads as initialised.

    Arguments:
        event_shape: ``(D,)`` or ``(C, H, W)``.
        init: ``"zero"`` or ``"data"``.
        target_std: the per-dimension standard deviation ``init="data"`` aims at (the prior's, for NICE).
        eps: added to the measured standard deviation.

    Shapes: (batch, *event_shape) -> (batch, *event_shape), logdet (batch,).

    Example:
        >>> layer = Scaling((2,))
        >>> with torch.no_grad():
        ...     _ = layer.log_scale.copy_(torch.tensor([0.0, 1.0]))
        >>> y, logdet = layer(torch.ones(1, 2))
        >>> [round(v, 4) for v in y.flatten().tolist()], logdet.tolist()
        ([1.0, 2.7183], [1.0])
    """

    def __init__(self, event_shape: Sequence[int], init: Literal["zero", "data"] = "zero", target_std: float = 1.0,
                 eps: float = 1e-8):
        super().__init__()
        if init not in ("zero", "data"):
            raise ValueError(f"Scaling: init must be 'zero' or 'data'; got {init!r}")
        if not target_std > 0:
            raise ValueError(f"Scaling: target_std must be positive; got {target_std}")
        self.event_shape = tuple(int(n) for n in event_shape)
        self.init, self.target_std, self.eps = init, float(target_std), eps
        self.log_scale = nn.Parameter(torch.zeros(self.event_shape))  # s
        self.register_buffer("initialized", torch.tensor(int(init == "zero"), dtype=torch.uint8))

    @torch.no_grad()
    def _initialize(self, x: Tensor) -> None:
        _, std = pooled_moments(x.reshape(x.shape[0], -1).T, "Scaling", "examples", tuple(x.shape))
        self.log_scale.copy_(torch.log(self.target_std / (std + self.eps)).reshape(self.event_shape))
        self.initialized.fill_(1)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        state_dict.setdefault(prefix + "initialized", torch.tensor(1, dtype=torch.uint8))  # saved before it existed
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        check_event("Scaling", x, self.event_shape)
        if self.training and not self.initialized.item():
            self._initialize(x)
        y = x * torch.exp(self.log_scale)
        return y, self.log_scale.sum().expand(x.shape[0])

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        check_event("Scaling", y, self.event_shape)
        x = y * torch.exp(-self.log_scale)
        return x, (-self.log_scale.sum()).expand(y.shape[0])
