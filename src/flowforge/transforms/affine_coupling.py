"""RealNVP's affine coupling layer with a bounded log-scale (RealNVP tanh or Glow sigmoid)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import Transform, check_event, sum_except_batch
from .masks import as_coupling_mask

SCALE_FNS = ("tanh", "sigmoid")


class AffineCoupling(Transform):
    r"""Affine coupling (Dinh et al., 2017, arXiv:1605.08803, eq. 9; Kingma & Dhariwal, 2018,
    arXiv:1807.03039, Table 1):

    .. math::
        y = b \odot x + (1 - b) \odot \bigl(x \odot e^{\log s(b \odot x)} + t(b \odot x)\bigr), \qquad
        \log |\det J| = \sum_{b = 0} \log s,

    with ``b`` the binary ``mask`` (1 = identity part). The ``conditioner`` returns ``(t, raw)`` stacked on
    dim 1, and the log-scale is bounded for stability:

    - ``scale_fn="tanh"`` (RealNVP, §4.1 "scale ... tanh ... multiplied by a learned scale"):
      ``log s = a * tanh(raw)`` with a learned per-channel ``scale_factor`` ``a`` (initialised to 1);
    - ``scale_fn="sigmoid"`` (Glow's code, ``s = sigmoid(raw + 2)``): ``log s = logsigmoid(raw + 2)``, so
      ``s`` lies in (0, 1) and starts near 0.88 when the conditioner's last layer is zero.

    Arguments:
        mask: 0/1 tensor of the event shape, ``(D,)`` or ``(C, H, W)``; kept as a buffer.
        conditioner: module mapping (batch, *event) -> (batch, 2 C, *event[1:]), i.e. the event shape with twice
            the channels (``(batch, 2 D)`` for vectors); the first half is the shift ``t``, the second the raw
            scale. It sees the masked input; only the ``mask == 0`` part of its output is used. In a conditional
            flow it is called ``conditioner(x_masked, context)`` with the context (batch, context).
        scale_fn: ``"tanh"`` or ``"sigmoid"``.

    Shapes: (batch, *event) -> (batch, *event), logdet (batch,).

    Example:
        >>> from flowforge.transforms import half_mask
        >>> layer = AffineCoupling(half_mask(4), torch.nn.Linear(4, 8))
        >>> x = torch.randn(3, 4)
        >>> y, logdet = layer(x)
        >>> x_back, inv_logdet = layer.inverse(y)
        >>> torch.allclose(x_back, x, atol=1e-6), torch.allclose(logdet + inv_logdet, torch.zeros(3), atol=1e-6)
        (True, True)
    """

    takes_context = True  # a context, when the flow has one, goes to the conditioner
    SIGMOID_OFFSET = 2.0  # Glow's sigmoid(h + 2): the scale starts close to (not at) 1 with a zero-init network

    def __init__(self, mask: Tensor, conditioner: nn.Module, scale_fn: str = "tanh"):
        super().__init__()
        if scale_fn not in SCALE_FNS:
            raise ValueError(f"AffineCoupling: scale_fn must be one of {SCALE_FNS}; got {scale_fn!r}")
        mask = as_coupling_mask("AffineCoupling", mask)
        self.register_buffer("mask", mask)
        self.conditioner = conditioner
        self.scale_fn = scale_fn
        if scale_fn == "tanh":
            per_channel = (mask.shape[0],) + (1,) * (mask.dim() - 1)  # (C, 1, 1) or (D,)
            self.scale_factor = nn.Parameter(torch.ones(per_channel, dtype=mask.dtype))

    def _shift_and_log_scale(self, x_b: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        h = self.conditioner(x_b) if context is None else self.conditioner(x_b, context)  # (B, 2C, ...) or (B, 2D)
        expected = (x_b.shape[0], 2 * x_b.shape[1], *x_b.shape[2:])
        if tuple(h.shape) != expected:
            raise ValueError(f"AffineCoupling: the conditioner must return twice the input's channels, shape "
                             f"{expected} (shift, raw scale); got {tuple(h.shape)}")
        shift, raw = h.chunk(2, dim=1)  # (B, *event) each
        if self.scale_fn == "tanh":
            log_s = self.scale_factor * torch.tanh(raw)
        else:
            log_s = F.logsigmoid(raw + self.SIGMOID_OFFSET)
        # Zero on the identity part, so y = x there exactly and exp() never sees unused values.
        free = 1 - self.mask
        return free * shift, free * log_s

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        check_event("AffineCoupling (event = mask shape)", x, self.mask.shape)
        shift, log_s = self._shift_and_log_scale(x * self.mask, context)
        y = x * torch.exp(log_s) + shift
        return y, sum_except_batch(log_s)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        check_event("AffineCoupling (event = mask shape)", y, self.mask.shape)
        shift, log_s = self._shift_and_log_scale(y * self.mask, context)
        x = (y - shift) * torch.exp(-log_s)
        return x, -sum_except_batch(log_s)
