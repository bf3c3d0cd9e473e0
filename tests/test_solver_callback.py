"""Every sampler's ``callback``: one record per step, at the grid's times, with the model's prediction there."""

import pytest
import torch

from flowforge.paths import LinearPath
from flowforge.paths.base import expand_like
from flowforge.solvers import SOLVERS, Euler, RK4, StepRecord, get_solver, time_grid, uniform_grid

MU, S = 1.5, 0.5  # data N(MU, S^2 I)


class GaussianField:
    """The exact field of Gaussian data N(MU, S^2 I) on the linear path: a denoiser, a velocity, an average velocity.

    With ``x_t = alpha x0 + sigma eps``: ``E[x0 | x_t] = MU + alpha S^2 / (alpha^2 S^2 + sigma^2) (x_t - alpha MU)``
    and ``E[eps | x_t] = sigma / (alpha^2 S^2 + sigma^2) (x_t - alpha MU)``.
    """

    finite_at_zero = True

    def __init__(self):
        self.path = LinearPath()

    def coefficients(self, t):
        return self.path.coefficients(t)

    def t_from_sigma(self, sigma):
        return self.path.t_from_sigma(sigma)

    def denoise(self, x, t):
        c = self.path.coefficients(expand_like(t, x))
        return MU + c.alpha * S**2 / (c.alpha**2 * S**2 + c.sigma**2) * (x - c.alpha * MU)

    def velocity(self, x, t):
        c = self.path.coefficients(expand_like(t, x))
        eps = c.sigma / (c.alpha**2 * S**2 + c.sigma**2) * (x - c.alpha * MU)  # E[eps | x_t], finite at t = 0
        return c.d_alpha * self.denoise(x, t) + c.d_sigma * eps

    def mean_velocity(self, x, r, t):
        return self.velocity(x, t)  # not MeanFlow's u: enough to see what the sampler reports


TARGETS = {"ddim": "x0", "ddpm": "x0", "dpm++2m": "x0", "edm-stochastic": "x0", "mean-flow": "mean-velocity"}
FIXED = [name for name, cls in SOLVERS.items() if cls.fixed_grid]


@pytest.mark.parametrize("name", FIXED)
def test_a_fixed_grid_sampler_reports_each_step_at_the_grids_times(name):
    field, steps = GaussianField(), 7
    times = time_grid(field.path, steps, finite_start=SOLVERS[name].finite_start)
    x = torch.randn(16, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * float(
        field.coefficients(times[:1]).sigma)
    records: list[StepRecord] = []
    result = get_solver(name).solve(field, x.clone(), times, generator=torch.Generator().manual_seed(1),
                                    callback=records.append)
    grid = times.tolist()
    assert len(records) == steps and torch.isfinite(result.x).all()
    assert [r.index for r in records] == list(range(steps))
    assert [(r.t, r.t_next) for r in records] == list(zip(grid[:-1], grid[1:]))
    assert torch.equal(records[0].x, x) and torch.equal(records[-1].x_next, result.x)
    assert all(a.x_next is b.x for a, b in zip(records, records[1:]))  # the states chain
    assert records[-1].nfe == result.nfe and all(a.nfe < b.nfe for a, b in zip(records, records[1:]))
    target = TARGETS.get(name, "velocity")
    assert all(r.target == target for r in records)
    for r in records:  # the prediction is the model's output at the step's start (EDM's: no churn by default)
        tb = torch.full((16,), r.t, dtype=torch.float64)
        expected = {"x0": field.denoise, "velocity": field.velocity}.get(target, field.velocity)(r.x, tb)
        torch.testing.assert_close(r.prediction, expected, rtol=1e-12, atol=1e-12)


def test_edm_churn_reports_the_churned_point():
    field, steps = GaussianField(), 5
    times = time_grid(field.path, steps, finite_start=True)
    records: list[StepRecord] = []
    x = torch.randn(8, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 80
    get_solver("edm-stochastic", S_churn=10.0).solve(field, x, times, generator=torch.Generator().manual_seed(1),
                                                      callback=records.append)
    assert len(records) == steps and records[0].target == "x0"
    # D(x_hat, t_hat) at a noisier point than (x, t): not the denoiser at the step's start
    tb = torch.full((8,), records[1].t, dtype=torch.float64)
    assert not torch.allclose(records[1].prediction, field.denoise(records[1].x, tb))


def test_dopri5_reports_its_accepted_steps():
    field = GaussianField()
    times = uniform_grid(1, 1.0, 0.0)
    x = torch.randn(16, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    records: list[StepRecord] = []
    result = get_solver("dopri5", rtol=1e-6, atol=1e-6).solve(field, x.clone(), times, callback=records.append)
    assert len(records) > 3 and [r.index for r in records] == list(range(len(records)))
    assert records[0].t == 1.0 and torch.equal(records[0].x, x)
    assert all(a.t_next == b.t and a.x_next is b.x for a, b in zip(records, records[1:]))  # accepted steps chain
    assert all(r.t_next < r.t for r in records) and records[-1].t_next <= 0.0 < records[-1].t
    assert records[-1].nfe == result.nfe > 6 * len(records)
    for r in records:
        tb = torch.full((16,), r.t, dtype=torch.float64)
        torch.testing.assert_close(r.prediction, field.velocity(r.x, tb), rtol=1e-12, atol=1e-12)


def test_a_progress_bar_and_a_callback_together():
    records: list[StepRecord] = []
    result = Euler().solve(lambda x, t: -x, torch.ones(2, 2), uniform_grid(3), progress=True, callback=records.append)
    assert len(records) == 3 and result.nfe == 3


def test_get_solver_takes_an_instance_without_options():
    rk4 = RK4()
    assert get_solver(rk4) is rk4
    with pytest.raises(ValueError, match="already built"):
        get_solver(rk4, eta=0.5)


def test_a_models_sample_passes_its_callback_to_the_solver():
    from flowforge.models import ContinuousFlow
    from flowforge.nets import MLP

    torch.manual_seed(0)
    model = ContinuousFlow(LinearPath(), MLP((2,), width=16, depth=2), (2,))
    records: list[StepRecord] = []
    x = model.sample(5, sampler="heun", steps=4, callback=records.append, generator=torch.Generator().manual_seed(0))
    assert [r.index for r in records] == [0, 1, 2, 3] and records[-1].t_next == 0.0
    assert torch.equal(records[-1].x_next, x)  # the last record's state is the sample (float data: no rounding)
    assert torch.equal(x, model.sample(5, sampler="heun", steps=4, generator=torch.Generator().manual_seed(0)))
