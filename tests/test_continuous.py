"""Continuous models against closed forms: paths, conversions, samplers, likelihood, inpainting.

A Gaussian mixture's posterior mean ``E[x0 | x_t]`` is known in closed form on
every affine path, so a model that returns it exactly isolates the samplers,
the path conversions and the likelihood integrator from any training error.
"""

import math

import pytest
import torch
from torch import nn

from flowforge.metrics import energy_distance
from flowforge.models import ContinuousFlow
from flowforge.models.field import PathField
from flowforge.models.precond import EDMPrecond
from flowforge.config import ModelConfig
from flowforge.models.objectives import (CosMap, LogitNormal, LogNormalSigma, ModeSampling, Regression, Uniform,
                                         ot_permutation, x0_error_scale)
from flowforge.nets import MLP
from flowforge.paths import (PATHS, PREDICTIONS, EDMPath, LinearPath, VEPath, VPPath, convert, expand_like,
                             from_x0_eps, to_x0_eps)
from flowforge.rng import BatchRandom
from flowforge.solvers import hutchinson_divergence, exact_divergence

ALL_PATHS = {name: build() for name, build in PATHS.items()} | {"linear-smin": LinearPath(0.01)}


def interior_times(path, n=7):
    """Times strictly inside the path's domain, away from the singular ends."""
    lo, hi = max(path.train_t_min, 1e-3 * path.t_max), 0.95 * path.t_max
    return torch.linspace(lo, hi, n, dtype=torch.float64)


# ----------------------------------------------------------------------------- paths and conversions


@pytest.mark.parametrize("name", sorted(ALL_PATHS))
def test_t_from_sigma_inverts_sigma(name):
    path = ALL_PATHS[name]
    t = interior_times(path)
    assert torch.allclose(path.t_from_sigma(path.edm_sigma(t)), t, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", sorted(ALL_PATHS))
def test_path_derivatives_match_autograd(name):
    path = ALL_PATHS[name]
    t = interior_times(path).requires_grad_(True)
    c = path.coefficients(t)

    def grad(y):  # a coefficient constant in t carries no graph
        return torch.autograd.grad(y.sum(), t, retain_graph=True)[0] if y.requires_grad else torch.zeros_like(t)

    d_alpha, d_sigma = grad(c.alpha), grad(c.sigma)
    assert torch.allclose(c.d_alpha, d_alpha, rtol=1e-9, atol=1e-12)
    assert torch.allclose(c.d_sigma, d_sigma, rtol=1e-9, atol=1e-12)


def test_paths_in_edm_form():
    t = torch.linspace(0.05, 0.95, 9, dtype=torch.float64)
    for vp in (VPPath("linear"), VPPath("cosine")):
        c = vp.coefficients(t)
        assert torch.allclose(c.alpha**2 + c.sigma**2, torch.ones_like(t))
    # EDM Table 1: VP linear sigma(t) = sqrt(exp(beta_d t^2 / 2 + beta_min t) - 1)
    assert torch.allclose(VPPath().edm_sigma(t), torch.sqrt(torch.exp(19.9 * t**2 / 2 + 0.1 * t) - 1))
    assert torch.allclose(VEPath().edm_sigma(t), t.sqrt()) and torch.allclose(EDMPath().edm_sigma(t), t)
    assert torch.allclose(LinearPath().edm_sigma(t), t / (1 - t))
    assert VEPath(80).sigma_range() == (0.0, 80.0) and EDMPath(80).t_max == 80
    assert math.isinf(LinearPath().sigma_range()[1]) and VPPath("cosine").sigma_range()[1] > 1e6  # alpha_1 = 0


@pytest.mark.parametrize("name", sorted(ALL_PATHS))
@pytest.mark.parametrize("kind", PREDICTIONS)
def test_conversions_round_trip(name, kind):
    path = ALL_PATHS[name]
    gen = torch.Generator().manual_seed(1)
    t = interior_times(path)
    x0, eps = torch.randn(len(t), 3, generator=gen, dtype=torch.float64), torch.randn(len(t), 3, generator=gen,
                                                                                      dtype=torch.float64)
    c = path.coefficients(expand_like(t, x0))
    x_t = c.alpha * x0 + c.sigma * eps
    pred = from_x0_eps(x0, eps, kind, c)
    back_x0, back_eps = to_x0_eps(pred, kind, x_t, c)
    assert torch.allclose(back_x0, x0, rtol=1e-8, atol=1e-8) and torch.allclose(back_eps, eps, rtol=1e-8, atol=1e-8)
    for dst in PREDICTIONS:
        assert torch.allclose(convert(pred, kind, dst, x_t, c), from_x0_eps(x0, eps, dst, c), rtol=1e-8, atol=1e-8)
    # the velocity prediction is the path's conditional velocity d x_t / dt
    ps = path.sample(x0, eps, t)
    assert torch.allclose(from_x0_eps(x0, eps, "velocity", c), ps.dx_t)
    # the x0 error is |k| times the prediction error (what the loss weighting converts with)
    delta = 1e-3 * torch.randn_like(pred)
    moved_x0, _ = to_x0_eps(pred + delta, kind, x_t, c)
    assert torch.allclose((moved_x0 - x0).abs(), x0_error_scale(kind, c).abs() * delta.abs(), rtol=1e-6, atol=1e-12)


def test_unknown_prediction_is_named():
    c = LinearPath().coefficients(torch.tensor([0.5]))
    with pytest.raises(ValueError, match="unknown prediction 'noise'; choose one of x0, eps"):
        convert(torch.zeros(1), "noise", "x0", torch.zeros(1), c)


# ----------------------------------------------------------------------------- an exact model


class MixturePosteriorMean(nn.Module):
    """The exact denoiser ``E[x0 | x_t]`` of a Gaussian mixture on ``path``, in the signature of a network.

    Data ``x0 ~ sum_k w_k N(mu_k, s^2 I)``; on a path, ``x_t | k ~ N(alpha mu_k, (alpha^2 s^2 + sigma^2) I)`` and
    ``E[x0 | x_t, k] = mu_k + alpha s^2 / (alpha^2 s^2 + sigma^2) (x_t - alpha mu_k)``.
    """

    def __init__(self, path, means, std, log_w, output="x0"):
        super().__init__()
        self.path, self.means, self.std, self.log_w, self.output = path, means, std, log_w, output

    def forward(self, x, t_scaled):
        t = t_scaled * self.path.t_max  # ContinuousFlow hands networks t / t_max
        c = self.path.coefficients(expand_like(t, x).to(x.dtype))
        a, s = c.alpha[:, None], c.sigma[:, None]  # (B, 1, 1)
        means = self.means.to(x.dtype)
        var = a**2 * self.std**2 + s**2  # (B, 1, 1)
        diff = x[:, None, :] - a * means[None]  # (B, K, D)
        logits = self.log_w.to(x.dtype) - 0.5 * diff.square().sum(-1) / var[..., 0] - 0.5 * x.shape[1] * var[..., 0].log()
        r = torch.softmax(logits, -1)  # (B, K)
        posterior = means[None] + a * self.std**2 / var * diff  # (B, K, D)
        x0 = (r[..., None] * posterior).sum(1)
        return x0 if self.output == "x0" else (x - c.alpha * x0) / c.sigma  # the exact eps prediction


class MixtureFlow(ContinuousFlow):
    """A 'trained' model whose network is the exact x0 (or eps) prediction for a Gaussian mixture."""

    def __init__(self, path, means, std, weights=None, target="x0"):
        log_w = torch.log(weights if weights is not None else torch.full((len(means),), 1 / len(means)))
        super().__init__(path, MixturePosteriorMean(path, means, std, log_w, target), (means.shape[1],),
                         target=target)
        self.means, self.std, self.log_w = means, std, log_w
        self.register_parameter("unused", nn.Parameter(torch.zeros(())))  # samplers find the device from it

    def draw(self, n, seed):
        gen = torch.Generator().manual_seed(seed)
        k = torch.multinomial(self.log_w.exp(), n, replacement=True, generator=gen)
        return self.means[k] + self.std * torch.randn(n, self.means.shape[1], generator=gen)


MEANS = torch.tensor([[-2.0, 0.0], [2.0, 0.0], [0.0, 2.5]])
N = 1500


def mixture(path=None):
    return MixtureFlow(path or LinearPath(), MEANS, 0.3)


@pytest.fixture(scope="module")
def floor():
    """Energy distance between two fresh mixture draws (the noise floor), and a matched Gaussian's."""
    model = mixture()
    ref = model.draw(N, 100)
    fresh = [energy_distance(model.draw(N, 200 + k), ref) for k in range(3)]
    data = model.draw(20000, 7)
    gauss = data.mean(0) + torch.randn(N, 2, generator=torch.Generator().manual_seed(3)) @ torch.linalg.cholesky(
        torch.cov(data.T)).T
    return ref, max(fresh), energy_distance(gauss, ref)


SAMPLERS = [  # (sampler, steps, grid, options)
    ("euler", 200, "uniform", {}), ("heun", 40, "uniform", {}), ("midpoint", 40, "uniform", {}),
    ("rk4", 20, "uniform", {}), ("dopri5", 1, "uniform", {}), ("heun", 30, "karras", {}),
    ("ddim", 100, "uniform", {}), ("ddim", 50, "karras", {"eta": 0.5}), ("ddpm", 200, "uniform", {}),
    ("dpm++2m", 25, "uniform", {}), ("dpm++2m", 20, "karras", {}),
    ("edm-stochastic", 40, "karras", {"S_churn": 20.0, "S_noise": 1.0}),
]


@pytest.mark.parametrize("sampler,steps,grid,options", SAMPLERS)
def test_every_sampler_reproduces_the_mixture(sampler, steps, grid, options, floor):
    ref, noise_floor, gaussian = floor
    x = mixture().sample(N, sampler=sampler, steps=steps, grid=grid, generator=torch.Generator().manual_seed(5),
                         **options)
    score = energy_distance(x, ref)
    assert gaussian > 10 * noise_floor  # the yardstick can tell a wrong distribution
    assert score < 2.0 * noise_floor, (sampler, score, noise_floor, gaussian)


@pytest.mark.parametrize("name,order", [("euler", 1), ("heun", 2)])
def test_order_on_the_mixture_field(name, order):
    """Against a fine RK4 solution from the same noise: Euler order 1, Heun 2 (its Euler last step included)."""
    model = mixture()
    field = PathField(model)
    from flowforge.solvers import get_solver, uniform_grid

    x1 = torch.randn(256, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    exact = get_solver("rk4").solve(field, x1.clone(), uniform_grid(4096)).x
    # the median error: a few points between components sit near a watershed where any error is amplified
    errors = [(get_solver(name).solve(field, x1.clone(), uniform_grid(n)).x - exact).abs().median().item()
              for n in (32, 64, 128, 256)]
    orders = [math.log2(a / b) for a, b in zip(errors, errors[1:])]
    assert all(abs(o - order) < 0.2 for o in orders), (errors, orders)


@pytest.mark.parametrize("sample_path", ["ve", "vp", "linear", "edm"])
def test_a_ve_denoiser_samples_with_any_path(sample_path, floor):
    """EDM's claim: the ODEs of all paths share their marginals, so one denoiser serves every path's sampler."""
    ref, noise_floor, _ = floor
    model = mixture(VEPath())
    x = model.sample(N, sampler="heun", steps=40, grid="karras", path=ALL_PATHS[sample_path],
                     generator=torch.Generator().manual_seed(9))
    assert energy_distance(x, ref) < 2.0 * noise_floor


def test_a_model_undefined_at_alpha_zero_starts_at_sigma_max(floor):
    """On the linear path ``t = 1`` is ``alpha = 0``: an eps prediction gives ``x0 = 0 / 0`` there, so its
    grids start at EDM's ``sigma_max = 80``; a velocity / x0 model and the karras grid are unchanged."""
    ref, noise_floor, _ = floor
    assert mixture().time_grid(10)[0] == 1.0  # x0 target: finite at alpha = 0
    model = MixtureFlow(LinearPath(), MEANS, 0.3, target="eps")
    for grid in ("uniform", "shifted"):
        times = model.time_grid(10, grid=grid)
        assert math.isclose(float(LinearPath().edm_sigma(times[:1])), 80.0, rel_tol=1e-5) and times[-1] == 0
    x = model.sample(N, sampler="heun", steps=40, generator=torch.Generator().manual_seed(5))
    assert torch.isfinite(x).all() and energy_distance(x, ref) < 2.0 * noise_floor


@pytest.mark.parametrize("sampler", ["euler", "heun", "ddim", "dpm++2m"])
def test_a_vp_model_on_the_linear_ode_starts_at_its_own_noise_level(sampler, floor):
    """The linear path's ``t = 1`` is ``sigma = inf``, beyond the VP model's ``sigma(1) ~ 152``: the default
    (uniform) grid starts where the two noise levels meet instead of feeding the model 0 / 0."""
    ref, noise_floor, _ = floor
    model = mixture(VPPath())
    times = model.time_grid(40, path=LinearPath())
    assert math.isclose(float(LinearPath().edm_sigma(times[:1])), VPPath().sigma_range()[1], rel_tol=1e-5)
    x = model.sample(N, sampler=sampler, steps=100 if sampler in ("euler", "ddim") else 40, path=LinearPath(),
                     generator=torch.Generator().manual_seed(5))
    assert torch.isfinite(x).all() and energy_distance(x, ref) < 2.0 * noise_floor, sampler
    assert PathField(mixture(), LinearPath()).same_path  # an equal path object is the model's own path


def test_vp_cosine_sigma_is_zero_at_t_zero_in_float32():
    path = VPPath("cosine")
    for dtype in (torch.float32, torch.float64):
        c = path.coefficients(torch.tensor([0.0, 1e-3, 0.5], dtype=dtype))
        ref = path.coefficients(torch.tensor([0.0, 1e-3, 0.5], dtype=torch.float64))
        assert c.sigma[0] == 0 and torch.allclose(c.sigma.double(), (1 - ref.alpha**2).sqrt(), rtol=1e-5)


# ----------------------------------------------------------------------------- likelihood


@pytest.mark.parametrize("path_name,mean", [("linear", (0.7, -0.4)), ("vp", (0.0, 0.0)), ("edm", (0.0, 0.0)),
                                            ("edm-1000", (0.7, -0.4))])
def test_ode_likelihood_of_a_gaussian_is_exact(path_name, mean):
    """Within 1e-2 nats. The linear path ends at pure noise (alpha_1 = 0); VP and EDM end at
    ``alpha_T (x0 + sigma_T eps)``, taken as centred, which costs ~ |E x0| / sigma_T nats (0.03 at
    sigma_T = 80 for this mean): exact for centred data, or with a larger sigma_max."""
    mu, s = torch.tensor([mean], dtype=torch.float64), 0.6
    path = EDMPath(1000.0) if path_name == "edm-1000" else ALL_PATHS[path_name]
    model = MixtureFlow(path, mu, s)
    x = model.draw(16, 1).double()
    log_p = model.log_prob(x, divergence="exact", rtol=1e-7, atol=1e-7)
    exact = torch.distributions.Normal(mu[0], s).log_prob(x).sum(1)
    assert (log_p - exact).abs().max() < 1e-2, (log_p - exact)


def test_hutchinson_estimate_is_unbiased():
    model = mixture()
    field = PathField(model)
    model.means = model.means.double()
    x = torch.randn(4, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 2
    t = torch.full((4,), 0.4, dtype=torch.float64)
    _, exact = exact_divergence(field.velocity, x, t)
    probes = torch.randint(0, 2, (4000, 4, 2), generator=torch.Generator().manual_seed(3)).double() * 2 - 1
    per_probe = torch.stack([hutchinson_divergence(field.velocity, x, t, z[None])[1] for z in probes[:400]])
    _, mean = hutchinson_divergence(field.velocity, x, t, probes)
    stderr = per_probe.std(0) / math.sqrt(len(probes))
    assert ((mean - exact).abs() < 4 * stderr + 1e-9).all(), (mean, exact, stderr)
    assert (per_probe.std(0) > 0).any()  # a single probe is a noisy estimate: the test could fail


def test_ode_likelihood_with_hutchinson_is_close_and_dequantized_units_add_up():
    model = MixtureFlow(LinearPath(), torch.tensor([[0.3, -0.1]]), 0.5)
    x = model.draw(64, 4)
    exact = model.log_prob(x, divergence="exact")
    hutch = model.log_prob(x, divergence="hutchinson", probes=8, generator=torch.Generator().manual_seed(0))
    assert (hutch - exact).abs().mean() < 0.1 and abs(float((hutch - exact).mean())) < 0.05


# ----------------------------------------------------------------------------- inpainting


def test_inpainting_keeps_the_known_part_and_resampling_finds_the_conditional():
    """Replacement alone is biased (the unknown part hears of the known part only through the noised state);
    RePaint's resampling with an ancestral sampler approaches the true conditional ``p(x2 | x1)``."""
    model = mixture()
    x = torch.tensor([[-2.0, 9.0], [2.0, 9.0], [0.0, 9.0]]).repeat(100, 1)  # second coordinate unknown
    known = torch.tensor([True, False])
    target = torch.tensor([0.0, 0.0, 2.5])  # x1 = -2 or 2 lies on a component at height 0; x1 = 0 on the top one
    errors = {}
    for resample in (1, 5):
        filled = model.inpaint(x, known, sampler="ddpm", steps=100, resample=resample,
                               generator=torch.Generator().manual_seed(0))
        assert torch.equal(filled[:, 0], x[:, 0])
        second = filled[:, 1].reshape(100, 3)
        errors[resample] = (second.mean(0) - target).abs()
    assert (errors[5] < torch.tensor([0.15, 0.15, 0.3])).all(), errors
    assert errors[5].sum() < 0.5 * errors[1].sum(), errors
    # a multistep sampler's history is the one from before the step for every repeat of it
    from flowforge.solvers.dpm_solver import DPMSolverPP2M

    seen = []
    original = DPMSolverPP2M.step

    def recording(self, field, x, t, t_next, ctx):
        seen.append((ctx.index, ctx.memory.get("h_last")))
        return original(self, field, x, t, t_next, ctx)

    DPMSolverPP2M.step = recording
    try:
        model.inpaint(x[:6], known, sampler="dpm++2m", steps=5, resample=3, generator=torch.Generator().manual_seed(0))
    finally:
        DPMSolverPP2M.step = original
    by_index = {}
    for index, h_last in seen:
        by_index.setdefault(index, set()).add(h_last)
    assert len(seen) == 13 and all(len(v) == 1 for v in by_index.values()), seen  # last step: no repeat
    for sampler in ("euler", "heun", "dpm++2m"):  # every fixed-step sampler keeps the known part exactly
        filled = model.inpaint(x[:6], known, sampler=sampler, steps=10, generator=torch.Generator().manual_seed(0))
        assert torch.equal(filled[:, 0], x[:6, 0]) and torch.isfinite(filled).all()


def test_inpainting_rejects_adaptive_sampler():
    with pytest.raises(ValueError, match="fixed-step sampler"):
        mixture().inpaint(torch.zeros(2, 2), torch.tensor([True, False]), sampler="dopri5")


# ----------------------------------------------------------------------------- training pieces


def test_edm_preconditioning_coefficients():
    pre = EDMPrecond(nn.Identity(), sigma_data=0.5)
    c_skip, c_out, c_in, c_noise = pre.coefficients(torch.tensor([0.5]))
    assert torch.allclose(c_skip, torch.tensor([0.5])) and torch.allclose(c_out, torch.tensor([0.5 / math.sqrt(2)]))
    assert torch.allclose(c_in, torch.tensor([1 / (0.5 * math.sqrt(2))]))
    assert torch.allclose(c_noise, torch.log(torch.tensor([0.5])) / 4)
    sigma = torch.logspace(-3, 2, 11)
    # lambda(sigma) c_out(sigma)^2 = 1: the loss on F has unit weight at every noise level
    assert torch.allclose(pre.loss_weight(sigma) * pre.coefficients(sigma)[1] ** 2, torch.ones(11))


def test_loss_matches_hand_computation_and_weightings():
    torch.manual_seed(0)
    x = torch.randn(32, 2)
    for target, weighting in (("velocity", "none"), ("eps", "min-snr"), ("x0", "edm")):
        model = ContinuousFlow(VPPath(), MLP((2,), 32, 2), (2,), target=target,
                               objective=Regression(weighting=weighting))
        loss = model.loss(x, BatchRandom(torch.Generator().manual_seed(1), 32, 0, 32))
        g = torch.Generator().manual_seed(1)  # the same draws, in the same order
        noise, u = torch.randn(32, 2, generator=g), torch.rand(32, generator=g)
        t = model.path.train_t_min + u * (1 - model.path.train_t_min)
        c = model.path.coefficients(t[:, None])
        pred = model.net(c.alpha * x + c.sigma * noise, t)
        err = (pred - from_x0_eps(x, noise, target, c)).square().mean(1)
        weight = model.loss_weight(t, model.path.coefficients(t))
        assert torch.allclose(loss, (weight * err).mean(), rtol=1e-5), (target, weighting)


def test_classifier_free_guidance_combines_conditional_and_unconditional():
    class Conditional(nn.Module):
        def forward(self, x, t, labels):
            return x * (1 + labels[:, None].float())

    model = ContinuousFlow(LinearPath(), Conditional(), (2,), target="x0", num_classes=3)
    x, t, y = torch.randn(5, 2), torch.full((5,), 0.5), torch.tensor([0, 1, 2, 0, 1])
    cond, uncond = model.predict(x, t, "x0", y), model.predict(x, t, "x0", None)
    assert torch.allclose(uncond, x * 4)  # label 3 = "no label"
    assert torch.allclose(model.predict(x, t, "x0", y, guidance=2.5), uncond + 2.5 * (cond - uncond))
    with pytest.raises(ValueError, match="labels must be in 0..2"):
        model.predict(x, t, "x0", torch.tensor([0, 1, 2, 0, 5]))
    with pytest.raises(ValueError, match="without classes"):
        ContinuousFlow(LinearPath(), MLP((2,), 8, 1), (2,)).predict(x, t, "x0", y)
    with pytest.raises(ValueError, match="integer class indices"):
        model.predict(x, t, "x0", y.float() + 0.5)
    calls = []
    model.net.register_forward_hook(lambda *_: calls.append(1))
    assert torch.allclose(model.predict(x, t, "x0", None, guidance=3.0), uncond) and len(calls) == 1  # nothing to guide
    unconditional = ContinuousFlow(LinearPath(), MLP((2,), 8, 1), (2,))
    for call in (lambda: unconditional.sample(4, steps=2, guidance=2.0),
                 lambda: unconditional.predict(x, t, "x0", guidance=2.0)):
        with pytest.raises(ValueError, match="guidance=2.0 needs a class-conditional model"):
            call()


def test_a_sigma_min_model_on_the_edm_ode_is_asked_only_within_its_range(floor):
    """A LinearPath(sigma_min) model knows noise levels >= sigma_min only; the EDM grid ends at 0.002 < 0.05,
    where it is asked at its own t = 0 instead of at a negative time."""
    ref, noise_floor, _ = floor
    model = mixture(LinearPath(sigma_min=0.05))
    seen = []
    model.net.register_forward_hook(lambda module, args, out: seen.append(float(args[1].min())))
    x = model.sample(N, sampler="heun", steps=40, grid="karras", path=EDMPath(),
                     generator=torch.Generator().manual_seed(9))
    assert min(seen) >= 0.0 and torch.isfinite(x).all()
    assert energy_distance(x, ref) < 2.0 * noise_floor


def test_ot_coupling_shortens_the_pairing():
    gen = torch.Generator().manual_seed(0)
    x0, noise = 2 * torch.rand(64, 2, generator=gen) - 1, torch.randn(64, 2, generator=gen)
    perm = ot_permutation(x0, noise)
    assert sorted(perm.tolist()) == list(range(64))
    assert (x0 - noise[perm]).square().sum() < 0.8 * (x0 - noise).square().sum()


def test_time_samplers():
    rng = BatchRandom(torch.Generator().manual_seed(0), 20000, 0, 20000)
    like = torch.zeros(1)
    t = LogitNormal().sample(rng, LinearPath(), like)
    assert abs(t.median() - 0.5) < 0.02 and 0 < t.min() and t.max() < 1
    shifted = LogitNormal(shift=3.0).sample(rng, LinearPath(), like)
    assert abs(shifted.median() - 0.75) < 0.02  # SD3 shift maps 0.5 to 3 * 0.5 / (1 + 2 * 0.5)
    sigma = LogNormalSigma().sample(rng, EDMPath(), like)
    assert abs(sigma.log().median() + 1.2) < 0.05 and abs(sigma.log().std() - 1.2) < 0.05
    for m in (-40.0, 40.0):  # sigmoid saturates to exactly 0 / 1 in float32; the times stay inside (0, 1)
        t = LogitNormal(m=m).sample(rng, LinearPath(), like)
        assert 0 < t.min() and t.max() < 1
        edm = ContinuousFlow(LinearPath(), MLP((2,), 8, 1), (2,), target="x0",
                             objective=Regression(LogitNormal(m=m), weighting="edm"))
        assert torch.isfinite(edm.loss(torch.randn(8, 2), BatchRandom(torch.Generator().manual_seed(0), 8, 0, 8)))
    u = Uniform().sample(rng, VEPath(), like)
    assert u.min() >= VEPath.train_t_min and u.max() <= 6400 and abs(u.mean() - 3200) < 100


def test_karras_grid_on_each_path():
    for name in ("ve", "vp", "edm", "linear"):
        model = ContinuousFlow(ALL_PATHS[name], MLP((2,), 8, 1), (2,))
        times = model.time_grid(10, grid="karras")
        sigmas = ALL_PATHS[name].edm_sigma(times[:-1])
        assert times[-1] == 0 and (times[1:] < times[:-1]).all()
        hi = min(80.0, ALL_PATHS[name].sigma_range()[1])
        assert math.isclose(float(sigmas[0]), hi, rel_tol=1e-6) and math.isclose(float(sigmas[-1]), 0.002, rel_tol=1e-6)


@pytest.mark.slow
def test_trained_ve_model_gives_one_distribution_on_every_path():
    """A small EDM-preconditioned denoiser trained on the VE path, sampled by the VE, VP and linear ODEs."""
    import numpy as np

    from flowforge.data.toy import moons

    torch.manual_seed(0)
    data = torch.as_tensor(moons(4000, np.random.default_rng(0), 0.05)).float()
    model = ContinuousFlow(VEPath(), MLP((2,), 128, 3, time_scale=1.0), (2,), precond=0.5,
                           objective=Regression(LogNormalSigma()))
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    for step in range(800):
        opt.zero_grad()
        model.loss(data[torch.randint(0, len(data), (256,))]).backward()
        opt.step()
    model.eval()
    draws = {name: model.sample(2000, sampler="heun", steps=30, grid="karras", path=ALL_PATHS[name],
                                generator=torch.Generator().manual_seed(1)) for name in ("ve", "vp", "linear")}
    other_seed = model.sample(2000, sampler="heun", steps=30, grid="karras", generator=torch.Generator().manual_seed(2))
    spread = energy_distance(draws["ve"], other_seed)  # sampling noise of the model itself
    for name in ("vp", "linear"):
        assert energy_distance(draws[name], draws["ve"]) < 2 * spread + 1e-3, name
    assert energy_distance(draws["ve"], data[:2000]) < 0.05


def test_a_paired_batch_brings_its_own_coupling():
    """Reflow's coupling: a `Paired` batch trains on exactly its (x, noise) rows, drawing only the times; the
    minibatch-OT coupling re-pairs independent draws by the exact plan."""
    from flowforge.models.objectives import Independent, MinibatchOT, Paired

    torch.manual_seed(0)
    model = ContinuousFlow(LinearPath(), MLP((2,), 16, 2), (2,))
    x, noise = torch.randn(8, 2), torch.randn(8, 2)
    loss = model.loss(Paired(x, noise), BatchRandom(torch.Generator().manual_seed(3), 8, 0, 8))
    t = Uniform().sample(BatchRandom(torch.Generator().manual_seed(3), 8, 0, 8), model.path, like=x)
    x_t = (1 - t)[:, None] * x + t[:, None] * noise
    torch.testing.assert_close(loss, (model.net(x_t, t) - (noise - x)).square().mean(1).mean())
    with pytest.raises(ValueError, match="paired noise must have the data's shape"):
        Paired(x, noise[:4])
    _, independent = Independent()(model, x, BatchRandom(torch.Generator().manual_seed(4), 8, 0, 8))
    _, ot = MinibatchOT()(model, x, BatchRandom(torch.Generator().manual_seed(4), 8, 0, 8))
    assert torch.equal(ot, independent[ot_permutation(x, independent)])


@pytest.mark.parametrize("name, law", [
    ("mode s=1.29", lambda u: 1 - u - 1.29 * (torch.cos(math.pi / 2 * u) ** 2 - 1 + u)),
    ("mode s=-0.5", lambda u: 1 - u + 0.5 * (torch.cos(math.pi / 2 * u) ** 2 - 1 + u)),
    ("cosmap", lambda u: 1 - 1 / (torch.tan(math.pi / 2 * u) + 1)),
])
def test_sd3_time_laws_have_their_moments(name, law):
    """SD3's mode sampling (eq. 20) and cosine map (eq. 21): the first three moments of 200k draws against the
    moments of the map integrated over u by the midpoint rule (each to 4 standard errors)."""
    sampler = ModeSampling(float(name.split("=")[1])) if name.startswith("mode") else CosMap()
    n = 200_000
    t = sampler.sample(BatchRandom(torch.Generator().manual_seed(1), n, 0, n), LinearPath(), torch.zeros(1)).double()
    u = (torch.arange(1_000_000, dtype=torch.float64) + 0.5) / 1_000_000
    exact = law(u)
    for k in (1, 2, 3):
        se = (t**k).std() / math.sqrt(n)
        assert abs((t**k).mean() - (exact**k).mean()) < 4 * se, (name, k)
    assert 0 < t.min() and t.max() < 1


def test_mode_sampling_at_zero_is_uniform_and_its_scale_is_bounded():
    rng = lambda: BatchRandom(torch.Generator().manual_seed(3), 1000, 0, 1000)  # noqa: E731
    like = torch.zeros(1)
    mode, uniform = ModeSampling(0.0).sample(rng(), LinearPath(), like), Uniform().sample(rng(), LinearPath(), like)
    assert torch.allclose(mode, 1 - uniform, atol=1e-6)  # t = 1 - u: the same law, drawn from the other end
    for s in (-1.01, 1.76):  # beyond [-1, 2 / (pi - 2) = 1.752] the map folds over
        with pytest.raises(ValueError, match="monotone"):
            ModeSampling(s)
    assert ModelConfig(time_sampler="mode").mode_scale == 1.29
