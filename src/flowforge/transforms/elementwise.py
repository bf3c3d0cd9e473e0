"""Monotone elementwise maps whose parameters a conditioner computes: affine and rational-quadratic spline.

A coupling or autoregressive layer (:mod:`.coupling`, :mod:`.autoregressive`) asks its conditioner for ``params``
raw numbers per feature and hands them here; the map turns them into a monotone function of each feature.
"""

from __future__ import annotations

from torch import Tensor

from .splines import SplineShape, rational_quadratic


class ElementwiseMap:
    """``y_i = g(x_i; raw_i)`` per feature with its log-derivative; ``params`` raw numbers per feature.

    Shapes: ``x`` (batch, D), ``raw`` (batch, D, params) -> ``y`` (batch, D), ``log|dy_i/dx_i|`` (batch, D).
    """

    params: int

    def __call__(self, x: Tensor, raw: Tensor, inverse: bool = False) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


class MonotonicAffine(ElementwiseMap):
    r"""``y = x e^{a} + b`` with the log-scale soft-clipped, :math:`a = c \tanh(\mathrm{raw}_a / c)`, so that
    one layer scales by at most :math:`e^{\pm c}` (MAF, Papamakarios et al., 2017, arXiv:1705.07057, eq. 3 ff.,
    with the bounded scale of RealNVP's tanh). Raw ``(b, raw_a)`` of 0 is the identity.

    Example:
        >>> import torch
        >>> f = MonotonicAffine()
        >>> y, ld = f(torch.tensor([[1.0]]), torch.tensor([[[2.0, 0.0]]]))
        >>> y.item(), ld.item()
        (3.0, 0.0)
    """

    params = 2

    def __init__(self, bound: float = 3.0):
        if not bound > 0:
            raise ValueError(f"MonotonicAffine: bound must be positive; got {bound}")
        self.bound = float(bound)

    def __call__(self, x: Tensor, raw: Tensor, inverse: bool = False) -> tuple[Tensor, Tensor]:
        shift, log_scale = raw[..., 0], self.bound * (raw[..., 1] / self.bound).tanh()  # (B, D) each
        if inverse:
            return (x - shift) * (-log_scale).exp(), -log_scale
        return x * log_scale.exp() + shift, log_scale

    def describe(self) -> str:
        return f"affine (log-scale within +-{self.bound:g})"


class RationalQuadratic(ElementwiseMap):
    """The rational-quadratic spline of neural spline flows (:func:`.splines.rational_quadratic`); raw zeros
    are the identity (equal bins, unit slopes).

    Example:
        >>> import torch
        >>> f = RationalQuadratic(SplineShape(bins=4))
        >>> y, ld = f(torch.tensor([[0.3, 5.0]]), torch.zeros(1, 2, f.params))
        >>> torch.allclose(y, torch.tensor([[0.3, 5.0]])), torch.allclose(ld, torch.zeros(1, 2), atol=1e-6)
        (True, True)
    """

    def __init__(self, shape: SplineShape):
        self.shape = shape
        self.params = shape.params

    def __call__(self, x: Tensor, raw: Tensor, inverse: bool = False) -> tuple[Tensor, Tensor]:
        return rational_quadratic(x, raw, self.shape, inverse)

    def describe(self) -> str:
        return f"rational-quadratic spline ({self.shape.bins} bins on [-{self.shape.bound:g}, {self.shape.bound:g}])"


def check_raw(name: str, raw: Tensor, batch: int, features: int, params: int) -> None:
    """Raise a ValueError unless the conditioner's output ``raw`` is (batch, features, params)."""
    if tuple(raw.shape) != (batch, features, params):
        raise ValueError(f"{name}: the conditioner must return shape (batch, features, params) = "
                         f"{(batch, features, params)}; got {tuple(raw.shape)}")


__all__ = ["ElementwiseMap", "MonotonicAffine", "RationalQuadratic", "check_raw"]
