"""Monotone rational-quadratic splines with linear tails (Durkan et al., 2019, arXiv:1906.04032, §3.1).

The elementwise map of a neural spline flow: :func:`rational_quadratic` evaluates it (or its inverse) from raw
network outputs, :func:`spline_parameters_per_feature` says how many outputs one feature needs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class SplineShape:
    """The fixed hyper-parameters of a rational-quadratic spline.

    Arguments:
        bins: the number of bins ``K`` on ``[-bound, bound]``.
        bound: ``B``; outside ``[-B, B]`` the map is the identity (linear tails).
        min_width, min_height, min_derivative: floors that keep the bins and slopes away from 0
            (the NSF paper's code uses 1e-3 for all three). ``bins * min_width < 1`` is required.
    """

    bins: int = 8
    bound: float = 3.0
    min_width: float = 1e-3
    min_height: float = 1e-3
    min_derivative: float = 1e-3

    def __post_init__(self) -> None:
        if self.bins < 1 or not self.bound > 0:
            raise ValueError(f"a spline needs bins >= 1 and bound > 0; got bins={self.bins}, bound={self.bound}")
        if self.bins * max(self.min_width, self.min_height) >= 1:
            raise ValueError(f"{self.bins} bins of minimum width/height {max(self.min_width, self.min_height)} "
                             f"do not fit in the interval; lower the minimum or the number of bins")

    @property
    def params(self) -> int:
        """Raw parameters per feature: ``K`` widths, ``K`` heights and ``K - 1`` interior derivatives."""
        return 3 * self.bins - 1


def _knots_and_derivatives(raw: Tensor, shape: SplineShape) -> tuple[Tensor, Tensor]:
    """The knots and derivatives of the splines of ``raw`` (..., 3K - 1), as one table (..., 3, K + 1): rows
    ``x_k``, ``y_k`` (from -B to B) and ``delta_k`` (1 at both ends, matching the identity tails).

    Bin sizes are a softmax with a floor; the knots are their cumulative sums, divided by the last so that the
    ends sit exactly at -B and B. The derivatives are ``min + softplus(raw + shift)`` with the shift that makes
    a raw 0 a slope of exactly 1, so a zero-initialised network starts at the identity."""
    k = shape.bins
    floor: float | Tensor = shape.min_width
    if shape.min_height != shape.min_width:
        floor = raw.new_tensor([[shape.min_width], [shape.min_height]])  # (2, 1)
    sizes = floor + (1 - floor * k) * torch.softmax(raw[..., :2 * k].unflatten(-1, (2, k)), dim=-1)  # (..., 2, K)
    cum = torch.cumsum(sizes, dim=-1)
    knots = F.pad(cum / cum[..., -1:], (1, 0)) * (2 * shape.bound) - shape.bound  # (..., 2, K + 1)
    shift = math.log(math.expm1(1 - shape.min_derivative))  # softplus(shift) + min_derivative = 1
    delta = F.pad(shape.min_derivative + F.softplus(raw[..., 2 * k:] + shift), (1, 1), value=1.0)  # (..., K + 1)
    return torch.cat([knots, delta.unsqueeze(-2)], dim=-2), knots


def _forward(x: Tensor, x_k: Tensor, y_k: Tensor, w: Tensor, h: Tensor, d_k: Tensor, d_k1: Tensor
             ) -> tuple[Tensor, Tensor]:
    """Eq. 4 and its derivative (App. A) in the bin of each ``x``: ``(y, log g'(x))``."""
    s = h / w
    xi = (x - x_k) / w  # in [0, 1] up to rounding; a clamp would zero the gradient on the bin edges
    t = xi * (1 - xi)
    denom = s + (d_k1 + d_k - 2 * s) * t
    y = y_k + h * (s * xi * xi + d_k * t) / denom
    return y, _log_grad(xi, t, s, d_k, d_k1, denom)


def _log_grad(xi: Tensor, t: Tensor, s: Tensor, d_k: Tensor, d_k1: Tensor, denom: Tensor) -> Tensor:
    return torch.log(s * s * (d_k1 * xi * xi + 2 * s * t + d_k * (1 - xi) ** 2)) - 2 * torch.log(denom)


def _inverse(y: Tensor, x_k: Tensor, y_k: Tensor, w: Tensor, h: Tensor, d_k: Tensor, d_k1: Tensor
             ) -> tuple[Tensor, Tensor]:
    """The root of a xi^2 + b xi + c = 0 in the bin of each ``y`` (App. A), in the stable form
    xi = 2c / (-b - sqrt(b^2 - 4ac)): ``(x, log (g^-1)'(y))``."""
    s = h / w
    dy, curve = y - y_k, d_k1 + d_k - 2 * s
    a = h * (s - d_k) + dy * curve
    b = h * d_k - dy * curve
    c = -s * dy
    xi = 2 * c / (-b - torch.sqrt((b * b - 4 * a * c).clamp_min(0)))
    t = xi * (1 - xi)
    return x_k + xi * w, -_log_grad(xi, t, s, d_k, d_k1, s + curve * t)


def rational_quadratic(x: Tensor, raw: Tensor, shape: SplineShape, inverse: bool = False) -> tuple[Tensor, Tensor]:
    r"""The monotone rational-quadratic spline ``y = g(x)`` (or ``x = g^{-1}(y)`` with ``inverse=True``).

    In bin ``k`` with knots :math:`(x_k, y_k)`, width :math:`w_k`, slope :math:`s_k = h_k / w_k`, knot
    derivatives :math:`\delta_k, \delta_{k+1}` and :math:`\xi = (x - x_k) / w_k` (eq. 4 and App. A):

    .. math::
        g(x) = y_k + \frac{h_k \bigl[s_k \xi^2 + \delta_k \xi (1 - \xi)\bigr]}
                          {s_k + (\delta_{k+1} + \delta_k - 2 s_k) \xi (1 - \xi)}, \qquad
        g'(x) = \frac{s_k^2 \bigl[\delta_{k+1} \xi^2 + 2 s_k \xi (1 - \xi) + \delta_k (1 - \xi)^2\bigr]}
                     {\bigl[s_k + (\delta_{k+1} + \delta_k - 2 s_k) \xi (1 - \xi)\bigr]^2}.

    The inverse solves :math:`a \xi^2 + b \xi + c = 0` (App. A) with the root in its stable form
    :math:`\xi = 2c / (-b - \sqrt{b^2 - 4ac})`, which never subtracts nearly equal numbers. Outside
    ``[-B, B]`` the map is the identity and its log-derivative 0 (the end derivatives are 1, so ``g`` is C^1).

    Arguments:
        x: inputs (...,), any shape.
        raw: unconstrained parameters (..., 3K - 1): K widths, K heights, K - 1 interior derivatives.
        shape: the bins, bound and floors (:class:`SplineShape`).
        inverse: evaluate :math:`g^{-1}` instead.

    Returns:
        ``(y, log|g'|)`` of ``x``'s shape; for ``inverse=True`` the log-derivative of the inverse.

    Example:
        >>> s = SplineShape(bins=4, bound=2.0)
        >>> x, raw = torch.tensor([-3.0, -0.5, 0.7, 2.0]), torch.randn(4, s.params)
        >>> y, ld = rational_quadratic(x, raw, s)
        >>> x_back, ld_inv = rational_quadratic(y, raw, s, inverse=True)
        >>> torch.allclose(x_back, x, atol=1e-5), torch.allclose(ld + ld_inv, torch.zeros(4), atol=1e-5)
        (True, True)
        >>> y[0].item(), ld[0].item()  # in the left tail: the identity
        (-3.0, 0.0)
    """
    if raw.shape[-1] != shape.params or raw.shape[:-1] != x.shape:
        raise ValueError(f"rational_quadratic: raw must have shape (*x.shape, {shape.params}) = "
                         f"{(*x.shape, shape.params)}; got {tuple(raw.shape)}")
    table, knots = _knots_and_derivatives(raw, shape)  # (..., 3, K + 1), (..., 2, K + 1)
    inside = (x >= -shape.bound) & (x <= shape.bound)
    u = x.clamp(-shape.bound, shape.bound)  # evaluated everywhere, then the tails overwrite it (finite gradients)
    edges = knots[..., int(inverse), 1:-1].contiguous()  # interior knots of x (forward) or y (inverse)
    idx = torch.searchsorted(edges, u.unsqueeze(-1).contiguous(), right=True)  # (..., 1): the bin
    both = torch.cat([idx, idx + 1], dim=-1).unsqueeze(-2).expand(*idx.shape[:-1], 3, 2)
    ends = table.gather(-1, both)  # (..., 3, 2): (x, y, delta) at the bin's two knots
    (x_k, y_k, d_k), (x_k1, y_k1, d_k1) = ends[..., 0].unbind(-1), ends[..., 1].unbind(-1)
    step = _inverse if inverse else _forward
    out, log_grad = step(u, x_k, y_k, x_k1 - x_k, y_k1 - y_k, d_k, d_k1)
    return torch.where(inside, out, x), torch.where(inside, log_grad, torch.zeros_like(log_grad))


__all__ = ["SplineShape", "rational_quadratic"]
