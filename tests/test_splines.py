"""Rational-quadratic splines and the spline coupling: round trips, log-dets against autograd, tails and bin edges."""

from __future__ import annotations

import pytest
import torch
from torch.autograd.functional import jacobian

from flowforge.nets import CouplingMLP
from flowforge.transforms import Coupling, MonotonicAffine, RationalQuadratic, SplineShape, half_mask
from flowforge.transforms.splines import _knots_and_derivatives, rational_quadratic
from _float64 import float64_seeded  # noqa: F401  (autouse: float64, seeded)

SHAPE = SplineShape(bins=6, bound=2.0)


def spline_inputs(n: int = 400, scale: float = 2.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs across [-3B, 3B] (both tails), every knot exactly, and raw parameters of a lively spline."""
    raw = scale * torch.randn(SHAPE.params)
    knots = _knots_and_derivatives(raw, SHAPE)[1][0]  # (K + 1,) x-knots, both ends +-B included
    x = torch.cat([torch.linspace(-3 * SHAPE.bound, 3 * SHAPE.bound, n), knots])
    return x, raw.expand(len(x), -1)


def test_spline_round_trip_and_log_dets_add_to_zero():
    x, raw = spline_inputs()
    y, ld = rational_quadratic(x, raw, SHAPE)
    x_back, ld_inv = rational_quadratic(y, raw, SHAPE, inverse=True)
    assert torch.allclose(x_back, x, atol=1e-12)
    assert torch.allclose(ld + ld_inv, torch.zeros_like(ld), atol=1e-12)
    assert bool((y[1:len(x) - SHAPE.bins - 1] > y[:len(x) - SHAPE.bins - 2]).all())  # strictly increasing


def test_spline_round_trip_in_float32():
    """To float32 precision: a forward error of a few ulp where the slopes are moderate, and everywhere a backward
    error of a few ulp (the inverse of a slope-1e-3 stretch amplifies y's rounding 1000-fold, as it must)."""
    x, raw = spline_inputs(scale=1.0)
    x32, raw32 = x.float(), raw.float()
    y, _ = rational_quadratic(x32, raw32, SHAPE)
    x_back, _ = rational_quadratic(y, raw32, SHAPE, inverse=True)
    assert torch.allclose(x_back, x32, atol=1e-5, rtol=1e-6)
    x, raw = spline_inputs(scale=3.0)
    y, _ = rational_quadratic(x.float(), raw.float(), SHAPE)
    y_again, _ = rational_quadratic(rational_quadratic(y, raw.float(), SHAPE, inverse=True)[0], raw.float(), SHAPE)
    assert torch.allclose(y_again, y, atol=5e-6, rtol=0)  # 20 ulp of |y| <= 2


@pytest.mark.parametrize("inverse", [False, True])
def test_spline_log_derivative_matches_autograd(inverse):
    x, raw = spline_inputs()
    x = x.clone().requires_grad_(True)
    y, ld = rational_quadratic(x, raw, SHAPE, inverse=inverse)
    grad, = torch.autograd.grad(y.sum(), x)  # elementwise map: the Jacobian is diagonal
    assert torch.allclose(ld, grad.log(), atol=1e-10, rtol=0)


def test_spline_is_the_identity_in_the_tails_and_continuous_at_the_bound():
    x, raw = spline_inputs()
    y, ld = rational_quadratic(x, raw, SHAPE)
    tails = x.abs() > SHAPE.bound
    assert torch.equal(y[tails], x[tails]) and torch.equal(ld[tails], torch.zeros_like(ld[tails]))
    edge = torch.tensor([-SHAPE.bound, SHAPE.bound])
    y_edge, ld_edge = rational_quadratic(edge, raw[:2], SHAPE)
    assert torch.allclose(y_edge, edge, atol=1e-12) and torch.allclose(ld_edge, torch.zeros(2), atol=1e-12)


def test_spline_with_zero_parameters_is_the_identity():
    x = torch.linspace(-3, 3, 50)
    y, ld = rational_quadratic(x, torch.zeros(50, SHAPE.params), SHAPE)
    assert torch.allclose(y, x, atol=1e-12) and torch.allclose(ld, torch.zeros(50), atol=1e-12)


def test_spline_refuses_mismatched_parameters_and_shapes():
    with pytest.raises(ValueError, match="raw must have shape"):
        rational_quadratic(torch.zeros(3), torch.zeros(3, 4), SHAPE)
    with pytest.raises(ValueError, match="do not fit"):
        SplineShape(bins=10, min_width=0.1)


def lively(module: torch.nn.Module) -> torch.nn.Module:
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return module


@pytest.mark.parametrize("elementwise", [RationalQuadratic(SHAPE), MonotonicAffine()], ids=["spline", "affine"])
@pytest.mark.parametrize("context", [0, 3])
def test_coupling_round_trip_and_log_det_vs_autograd_jacobian(elementwise, context):
    d, b = 5, 4
    mask = half_mask(d, 1)
    net = lively(CouplingMLP((int(mask.sum()),), (d - int(mask.sum()), elementwise.params), hidden=16, layers=2,
                             context=context))
    layer = Coupling(mask, net, elementwise)
    x = 2.5 * torch.randn(b, d)  # some coordinates in the tails
    c = torch.randn(b, context) if context else None
    y, ld = layer(x, c)
    x_back, ld_inv = layer.inverse(y, c)
    assert torch.allclose(x_back, x, atol=1e-10) and torch.allclose(ld + ld_inv, torch.zeros(b), atol=1e-10)
    for i in range(b):
        ci = c[i:i + 1] if c is not None else None
        jac = jacobian(lambda v: layer(v[None], ci)[0][0], x[i])  # (D, D)
        assert torch.allclose(torch.linalg.slogdet(jac).logabsdet, ld[i], atol=1e-10, rtol=0)
    assert torch.equal(y[:, mask == 1], x[:, mask == 1])
