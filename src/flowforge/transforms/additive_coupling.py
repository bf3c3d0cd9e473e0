"""NICE's additive coupling layer: volume preserving, inverse in closed form."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import Transform, check_event
from .masks import as_coupling_mask


class AdditiveCoupling(Transform):
    r"""Additive coupling (Dinh et al., 2015, arXiv:1410.8516, §3.2, eq. 4 ff.):

    .. math::
        y = x \odot b + (1 - b) \odot \bigl(x + m(x \odot b)\bigr), \qquad
        x = y \odot b + (1 - b) \odot \bigl(y - m(y \odot b)\bigr),

    with ``b`` the binary ``mask`` (1 = identity part, :mod:`flowforge.transforms.masks`) and ``m`` the
    ``conditioner``. The Jacobian is unit triangular, so ``log|det| = 0``: the layer preserves volume.

    Arguments:
        mask: 0/1 tensor of the event shape, ``(D,)`` or ``(C, H, W)``; kept as a buffer.
        conditioner: any module mapping (batch, *event) -> (batch, *event); it sees the masked input and only
            the ``mask == 0`` part of its output is used. In a conditional flow it is called
            ``conditioner(x_masked, context)`` with the context (batch, context).

    Shapes: (batch, *event) -> (batch, *event), logdet (batch,) of zeros.

    Example:
        >>> from flowforge.transforms import half_mask
        >>> layer = AdditiveCoupling(half_mask(4), torch.nn.Linear(4, 4))
        >>> x = torch.randn(2, 4)
        >>> y, logdet = layer(x)
        >>> torch.equal(y[:, :2], x[:, :2]), logdet.tolist()
        (True, [0.0, 0.0])
        >>> torch.allclose(layer.inverse(y)[0], x, atol=1e-6)
        True
    """

    takes_context = True  # a context, when the flow has one, goes to the conditioner

    def __init__(self, mask: Tensor, conditioner: nn.Module):
        super().__init__()
        self.register_buffer("mask", as_coupling_mask("AdditiveCoupling", mask))
        self.conditioner = conditioner

    def _shift(self, x_b: Tensor, context: Tensor | None) -> Tensor:
        m = self.conditioner(x_b) if context is None else self.conditioner(x_b, context)  # (B, *event)
        if m.shape != x_b.shape:
            raise ValueError(f"AdditiveCoupling: the conditioner must return the input's shape {tuple(x_b.shape)}; "
                             f"got {tuple(m.shape)}")
        return (1 - self.mask) * m

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        check_event("AdditiveCoupling (event = mask shape)", x, self.mask.shape)
        y = x + self._shift(x * self.mask, context)
        return y, torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        check_event("AdditiveCoupling (event = mask shape)", y, self.mask.shape)
        x = y - self._shift(y * self.mask, context)
        return x, torch.zeros(y.shape[0], dtype=y.dtype, device=y.device)
