"""DDIM and DPM-Solver++(2M) converge at their order on the exact Gaussian-mixture denoiser.

As ``test_order_on_the_mixture_field`` does for Euler and Heun: the model's network is the mixture's exact
``E[x0 | x_t]`` (``test_continuous.MixtureFlow``), so a sampler's error against a fine RK4 solution from the same
noise is its discretisation error alone, and halving the step divides it by ``2^order``. A perturbed coefficient
of DPM-Solver++(2M)'s multistep combination makes it first order (or inconsistent) and fails here on every grid.
"""

import math

import pytest
import torch
from test_continuous import MixtureFlow, MEANS

from flowforge.models.field import PathField
from flowforge.paths import LinearPath, VPPath
from flowforge.solvers import get_solver

STEPS = (32, 64, 128, 256)


def errors_and_orders(path, sampler, grid):
    model = MixtureFlow(path, MEANS, 0.3)
    field = PathField(model)
    grids = {n: model.time_grid(n, grid=grid).double() for n in (*STEPS, 1024)}
    sigma_top = float(path.coefficients(grids[STEPS[0]][:1]).sigma)
    x = sigma_top * torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    exact = get_solver("rk4").solve(field, x.clone(), grids[1024]).x
    # the median error: a few points between components sit near a watershed where any error is amplified
    errors = [(get_solver(sampler).solve(field, x.clone(), grids[n]).x - exact).abs().median().item() for n in STEPS]
    return errors, [math.log2(a / b) for a, b in zip(errors, errors[1:])]


@pytest.mark.parametrize("path,grid", [(VPPath(), "karras"), (LinearPath(), "uniform")])
def test_ddim_is_first_order(path, grid):
    errors, orders = errors_and_orders(path, "ddim", grid)
    assert all(abs(o - 1) < 0.15 for o in orders), (errors, orders)
    assert errors[-1] < 0.01


@pytest.mark.parametrize("path", [VPPath(), LinearPath()])
def test_dpm_solver_pp_2m_is_second_order(path):
    """Measured on the karras grid: orders 2.39, 2.20, 2.07 from 32 to 256 steps, on every path alike (the EDM
    unification: the karras grid is the same noise levels on any path, and both samplers are path-invariant)."""
    errors, orders = errors_and_orders(path, "dpm++2m", "karras")
    assert all(1.8 < o < 2.5 for o in orders), (errors, orders)
    assert orders[-1] == pytest.approx(2, abs=0.15) and errors[-1] < 2e-4, (errors, orders)


@pytest.mark.parametrize("shift", [0.08, 0.22, 0.44, 1.7, 3.0])
def test_shifted_grids_start_exactly_at_the_noise_end(shift):
    """``shift_times`` maps t = 1 to s / s, which rounds to 1 + 2e-16 for some s (0.08, 0.22, 0.44 among them):
    on the linear path that start has alpha_t = 1 - t < 0 and DPM-Solver++'s log-SNR raised a math domain error.
    The grid must start at 1 exactly, stay in [0, 1], and every sampler must run on it."""
    from flowforge.solvers import shift_times, uniform_grid
    for steps in (4, 10, 20, 50):
        times = shift_times(uniform_grid(steps), shift)
        assert times[0] == 1.0 and times.max() <= 1.0 and times.min() >= 0.0
        assert torch.all(times[1:] < times[:-1])
    model = MixtureFlow(LinearPath(), MEANS, 0.3)
    x = torch.randn(8, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for sampler in ("dpm++2m", "ddim", "euler"):
        out = get_solver(sampler).solve(PathField(model), x.clone(), model.time_grid(10, grid="shifted", shift=shift)).x
        assert torch.isfinite(out).all(), sampler
