"""A coupling layer with any monotone elementwise map and an optional context: NSF's spline coupling."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import Transform, check_event
from .elementwise import ElementwiseMap, check_raw
from .masks import as_coupling_mask


class Coupling(Transform):
    r"""Coupling with an elementwise map ``g`` (Durkan et al., 2019, arXiv:1906.04032, §3.2; Dinh et al., 2017):

    .. math::
        y_{b=1} = x_{b=1}, \qquad y_{b=0} = g\bigl(x_{b=0};\ \mathrm{NN}(x_{b=1}, c)\bigr), \qquad
        \log|\det J| = \sum_{b=0} \log |g'|,

    with ``b`` the binary ``mask`` (1 = identity part) and ``c`` an optional context (a conditional flow). With
    :class:`~.elementwise.RationalQuadratic` this is the RQ-NSF (C) layer; with
    :class:`~.elementwise.MonotonicAffine`, RealNVP's.

    Arguments:
        mask: 0/1 vector ``(D,)``.
        conditioner: ``(x_kept (batch, D_kept), context or None) -> raw (batch, D_free, map.params)``, e.g.
            :class:`flowforge.nets.CouplingMLP` with ``out_shape=(D_free, params)``.
        map: the elementwise map of the free features.

    Shapes: (batch, D) -> (batch, D), logdet (batch,); context (batch, C) or None.

    Example:
        >>> from flowforge.transforms import half_mask, RationalQuadratic, SplineShape
        >>> spline = RationalQuadratic(SplineShape(bins=5))
        >>> net = lambda x, c: torch.randn(x.shape[0], 2, spline.params)
        >>> layer = Coupling(half_mask(4), net, spline)
        >>> y, logdet = layer(torch.randn(3, 4))
        >>> y.shape, logdet.shape
        (torch.Size([3, 4]), torch.Size([3]))
    """

    takes_context = True

    def __init__(self, mask: Tensor, conditioner, map: ElementwiseMap):
        super().__init__()
        mask = as_coupling_mask("Coupling", mask)
        if mask.dim() != 1:
            raise ValueError(f"Coupling works on vectors: mask must be (D,); got shape {tuple(mask.shape)}")
        self.register_buffer("mask", mask)
        self.register_buffer("kept", torch.nonzero(mask == 1)[:, 0])
        self.register_buffer("free", torch.nonzero(mask == 0)[:, 0])
        self.conditioner = conditioner if isinstance(conditioner, nn.Module) else _Function(conditioner)
        self.map = map

    def _apply(self, x: Tensor, context: Tensor | None, inverse: bool) -> tuple[Tensor, Tensor]:
        check_event("Coupling (event = mask shape)", x, self.mask.shape)
        raw = self.conditioner(x[:, self.kept], context)  # (B, D_free, P)
        check_raw("Coupling", raw, x.shape[0], len(self.free), self.map.params)
        y_free, log_grad = self.map(x[:, self.free], raw, inverse)  # (B, D_free) each
        y = x.index_copy(1, self.free, y_free)
        return y, log_grad.sum(1)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._apply(x, context, inverse=False)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._apply(y, context, inverse=True)


class _Function(nn.Module):
    """A plain function as a conditioner module (tests, doctests)."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x: Tensor, context: Tensor | None) -> Tensor:
        return self.fn(x, context)


__all__ = ["Coupling"]
