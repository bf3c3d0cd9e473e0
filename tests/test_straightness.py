"""Straightness of a flow's paths (Liu et al., 2022) against a closed form."""

import torch

from flowforge.models.field import PathField
from flowforge.paths import LinearPath
from flowforge.solvers import straightness, uniform_grid
from test_continuous import MixtureFlow


def gaussian_straightness(s: float, points: int = 200001) -> float:
    """Per-dimension S of the linear path's ODE from N(0, I) (t = 1) to N(mu, s^2 I) (t = 0).

    Its paths are x_t = (1 - t) mu + sigma_t z with sigma_t = sqrt((1 - t)^2 s^2 + t^2) and z = x_1, so
    dx/dt - (x_1 - x_0) = (sigma_t' - (1 - s)) z and S = int_0^1 (sigma_t' - (1 - s))^2 dt per dimension.
    """
    t = torch.linspace(0, 1, points, dtype=torch.float64)
    d_sigma = (t - (1 - t) * s**2) / torch.sqrt((1 - t) ** 2 * s**2 + t**2)
    return float(torch.trapezoid((d_sigma - (1 - s)) ** 2, t))


def test_gaussian_to_gaussian_matches_the_closed_form():
    torch.manual_seed(0)
    for s in (0.3, 2.0):
        model = MixtureFlow(LinearPath(), torch.tensor([[1.5, -0.5]]), s)
        x1 = torch.randn(20000, 2, dtype=torch.float64)
        result = straightness(PathField(model).velocity, x1, uniform_grid(100, 1.0, 0.0))
        exact = gaussian_straightness(s)
        assert exact > 0.01
        assert abs(result.value - exact) < 0.03 * exact, (s, result.value, exact)
        assert result.nfe == 401


def test_two_separated_modes_bend_the_paths_more_than_one():
    # noise between two far-apart modes must turn towards one of them: a bent path
    two_modes = MixtureFlow(LinearPath(), torch.tensor([[-3.0, 0.0], [3.0, 0.0]]), 0.2)
    one_mode = MixtureFlow(LinearPath(), torch.tensor([[0.0, 0.0]]), 1.0)  # N(0, I) to itself
    x1 = torch.randn(4000, 2, generator=torch.Generator().manual_seed(1))
    curved = straightness(PathField(two_modes).velocity, x1, uniform_grid(50)).value
    gaussian = straightness(PathField(one_mode).velocity, x1, uniform_grid(50)).value
    # even N(0, I) to itself is not straight on the linear path: the interpolation's variance (1-t)^2 + t^2 dips
    assert abs(gaussian - gaussian_straightness(1.0)) < 0.05 * gaussian_straightness(1.0)
    assert curved > 1.5 * gaussian, (curved, gaussian)


def test_eval_measures_every_path_in_one_time_variable():
    """One distribution on the linear, VP, VE and EDM paths: one straightness (each path's own time would give
    0.70, 1.36, 0.03 and 0.009), close to its converged value at the default 25 steps."""
    from flowforge.paths import EDMPath, VEPath, VPPath
    from flowforge.jobs.evaluate import path_straightness

    means = torch.tensor([[-2.0, 0.0], [2.0, 0.0], [0.0, 2.5]])
    values = {type(p).__name__: path_straightness(MixtureFlow(p, means, 0.3), 3000, 25, seed=0)["value"]
              for p in (LinearPath(), VPPath(), VEPath(), EDMPath())}
    fine = path_straightness(MixtureFlow(LinearPath(), means, 0.3), 3000, 200, seed=0)["value"]
    assert all(abs(v - fine) < 0.05 * fine for v in values.values()), (values, fine)


def test_the_resolution_shift_scales_the_noise_level_on_every_path():
    from flowforge.paths import EDMPath, VEPath, VPPath
    from flowforge.solvers import shift_times

    means = torch.tensor([[0.0, 0.0]])
    for path in (LinearPath(), VPPath(), VEPath(), EDMPath()):
        model = MixtureFlow(path, means, 0.5)
        times = model.time_grid(12)
        out = model.resolution_shift(times, path, 2.0)
        sigma, shifted = path.edm_sigma(times.double()), path.edm_sigma(out.double())
        top = min(model.sigma_top(), path.sigma_range()[1])
        inner = torch.isfinite(sigma) & (sigma > 0) & (2 * sigma < top)
        assert torch.allclose(shifted[inner], 2 * sigma[inner], rtol=1e-6), type(path).__name__
        assert (shifted[~inner & (sigma > 0)] <= top * (1 + 1e-9)).all() and out[-1] == 0
    linear = MixtureFlow(LinearPath(), means, 0.5)
    times = linear.time_grid(8, grid="uniform")
    assert torch.allclose(linear.resolution_shift(times, linear.path, 3.0), shift_times(times, 3.0))  # SD3 eq. 23


def test_the_standard_error_matches_the_spread_over_independent_draws():
    # mixture paths differ path to path (which mode a draw turns to), so the estimate has a real spread
    field = PathField(MixtureFlow(LinearPath(), torch.tensor([[-2.0, 0.0], [2.0, 0.0]]), 0.3)).velocity
    runs = [straightness(field, torch.randn(200, 2, generator=torch.Generator().manual_seed(k)), uniform_grid(20))
            for k in range(30)]
    spread = torch.tensor([r.value for r in runs]).std().item()
    reported = sum(r.stderr for r in runs) / len(runs)
    assert 0.7 * spread < reported < 1.4 * spread, (reported, spread)
    assert straightness(lambda x, t: torch.ones_like(x), torch.zeros(4, 2), uniform_grid(4)).stderr == 0.0
    single = straightness(field, torch.zeros(1, 2), uniform_grid(4))
    assert single.stderr != single.stderr  # NaN: one path has no spread


def reference_straightness(velocity, x, times):
    """S written out by hand: RK4 steps, the trapezoid rule over the velocities at the grid times, the chord."""
    grid, start, speeds = times.tolist(), x, []
    for t, t_next in zip(grid[:-1], grid[1:]):
        h, tb = t_next - t, torch.full((x.shape[0],), t, dtype=x.dtype)
        k1 = velocity(x, tb)
        k2 = velocity(x + 0.5 * h * k1, tb + 0.5 * h)
        k3 = velocity(x + 0.5 * h * k2, tb + 0.5 * h)
        k4 = velocity(x + h * k3, torch.full_like(tb, t_next))
        speeds.append(k1)
        x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    speeds.append(velocity(x, torch.full((x.shape[0],), grid[-1], dtype=x.dtype)))
    chord = (x - start) / (grid[-1] - grid[0])
    gaps = torch.stack([(v - chord).square().flatten(1).mean(1) for v in speeds])  # (K + 1, batch)
    return float(torch.trapezoid(gaps, torch.tensor(grid, dtype=torch.float64), dim=0).abs().mean())


def test_straightness_through_the_rk4_callback_equals_the_written_out_sum():
    def field(x, t):  # a curved, coupled flow with no closed form
        t = t[:, None]
        return torch.sin(3 * x) * (1 - t) + x * t**2 - 0.5 * x.flip(1)

    x = torch.randn(300, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    times = uniform_grid(17, 1.0, 0.0)
    result = straightness(field, x, times)
    assert abs(result.value - reference_straightness(field, x, times)) < 1e-12
    assert result.value == 0.1262313533726858  # the hand-written RK4 loop this replaced gave exactly this
    assert result.nfe == 69
