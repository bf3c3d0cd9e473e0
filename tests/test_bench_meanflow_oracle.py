"""The exact quantities ``benchmarks.meanflow_oracle`` trains and measures against, on the 8-Gaussian mixture:
the exact average velocity, the posterior draws of the conditional velocity, and the swapped targets."""

import torch

from benchmarks.meanflow_oracle import (exact_average_velocity, posterior_velocities, swapped_target,
                                        target_noise)
from benchmarks.meanflow_weighting import eight_gaussians_mixture, exact_flow_map, exact_velocity
from flowforge import load_config
from flowforge.data.toy import TOY_SETS
from flowforge.models import build_model
from flowforge.models.objectives import MeanFlow

CENTRES, S = eight_gaussians_mixture(TOY_SETS["8gaussians"].noise)


def test_the_exact_average_velocity_is_the_exact_flow_over_the_interval():
    eps = torch.randn(300, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ones, zeros = torch.ones(300, dtype=torch.float64), torch.zeros(300, dtype=torch.float64)
    u = exact_average_velocity(eps, zeros, ones, CENTRES, S)
    assert (eps - u - exact_flow_map(eps, CENTRES, S, steps=400)).abs().max() < 1e-3  # one step lands on the ODE
    t = torch.full((300,), 0.6, dtype=torch.float64)
    assert torch.equal(exact_average_velocity(eps, t, t, CENTRES, S), exact_velocity(eps, t, CENTRES, S))
    short = exact_average_velocity(eps, t - 1e-4, t, CENTRES, S)  # a short interval: the instantaneous field
    assert (short - exact_velocity(eps, t, CENTRES, S)).abs().max() < 1e-2


def test_posterior_draws_average_to_the_exact_field():
    gen = torch.Generator().manual_seed(1)
    z = 2 * torch.randn(6, 2, generator=gen, dtype=torch.float64)
    t = torch.tensor([0.1, 0.3, 0.5, 0.7, 0.9, 0.95], dtype=torch.float64)
    v = posterior_velocities(z, t, CENTRES, S, 100_000, gen)  # (m, 6, 2)
    spread = v.std(0) / 100_000**0.5
    assert ((v.mean(0) - exact_velocity(z, t, CENTRES, S)).abs() < 5 * spread + 1e-6).all()


def test_the_swapped_targets_are_the_exact_field_where_r_equals_t():
    cfg = load_config("configs/meanflow-checkerboard.yaml", ["data.name=8gaussians", "model.net.width=32",
                                                              "model.net.depth=2"])
    model = build_model(cfg.model, {"shape": (2,), "kind": "points"})
    gen = torch.Generator().manual_seed(2)
    x0, noise = torch.randn(64, 2, generator=gen), torch.randn(64, 2, generator=gen)
    t = torch.rand(64, generator=gen).clamp(0.05, 0.95)
    z = (1 - t)[:, None] * x0 + t[:, None] * noise
    exact = exact_velocity(z.double(), t.double(), CENTRES, S).float()
    library = MeanFlow(p=0.0).terms(model, x0, noise, t, t)[1]
    assert torch.allclose(library, noise - x0, atol=1e-5)  # the library's target at r = t: eps - x
    for kind in ("exact-v", "oracle"):
        with swapped_target(kind, substeps=8):
            target = MeanFlow(p=0.0).terms(model, x0, noise, t, t)[1]
        assert torch.allclose(target, exact, atol=1e-4), kind
    assert MeanFlow.terms.__name__ == "terms" and MeanFlow.terms.__module__.endswith("mean_flow")  # restored
    rows = target_noise(model, n=20, m=8)
    assert abs(rows[0]["variance_ratio_mean"] - 1) < 1e-3  # r = t: the target is v itself
