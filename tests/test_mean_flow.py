"""MeanFlow: the average-velocity target by JVP, its sampler, the nets' interval input, and a short fit."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from flowforge.config import MeanFlowConfig, ModelConfig, NetConfig
from flowforge.models import build_model
from flowforge.models.continuous import ContinuousFlow
from flowforge.models.objectives import MeanFlow, Uniform, adaptive_loss, draw_interval
from flowforge.nets import MLP, DiT, UNet
from flowforge.paths import LinearPath, VPPath
from flowforge.rng import BatchRandom
from conftest import perturb_zero_layers


class ExactDirac(nn.Module):
    """The exact average velocity of data at one point ``c``: every path is straight, ``u = (z - c) / t``."""

    def __init__(self, c: torch.Tensor):
        super().__init__()
        self.c = c
        self.anchor = nn.Parameter(torch.zeros(()))  # the model needs a parameter for its device

    def forward(self, x, t, interval=None):
        return (x - self.c) / t[:, None] + 0 * self.anchor


def mean_flow_model(net, shape, **kw) -> ContinuousFlow:
    return ContinuousFlow(LinearPath(), net, shape, objective=MeanFlow(**kw))


@pytest.mark.parametrize("net", [
    lambda: MLP((3,), width=16, depth=2, time_embed_dim=8, interval=True),
    lambda: UNet((1, 8, 8), channels=8, channel_mult=(1, 2), num_res_blocks=1, attention_levels=(1,), interval=True),
    lambda: DiT((1, 8, 8), size="tiny", patch=2, positions="rope", interval=True),
], ids=["mlp", "unet", "dit"])
def test_interval_embedding_starts_at_zero_and_then_matters(net):
    torch.manual_seed(0)
    n = net()
    x = torch.randn(4, *((3,) if isinstance(n, MLP) else (1, 8, 8)))
    t = torch.rand(4)
    if not isinstance(n, MLP):
        perturb_zero_layers(n)  # DiT / U-Net output exactly 0 at init: give the rest weights
        for p in n.interval_embed[-1].parameters():
            p.data.zero_()
    same = n(x, t, interval=torch.zeros(4))
    torch.testing.assert_close(n(x, t, interval=torch.rand(4)), same)  # zero-initialised: no effect yet
    torch.testing.assert_close(n(x, t), same)  # a missing interval means r = t
    perturb_zero_layers(n, seed=1)
    assert not torch.allclose(n(x, t, interval=torch.rand(4)), n(x, t, interval=torch.zeros(4)))
    with pytest.raises(ValueError, match="without one"):
        (MLP((3,), width=8, depth=1) if isinstance(n, MLP) else MLP((64,), width=8, depth=1))(
            torch.randn(2, 3 if isinstance(n, MLP) else 64), torch.rand(2), interval=torch.rand(2))


def test_exact_average_velocity_has_zero_loss():
    """For data at one point the exact u is known; the target built from the JVP along (v, 0, 1) equals it.
    A JVP along (0, 0, 1) would not: d_t u = -(z - c) / t^2 is far from 0."""
    c = torch.tensor([[1.5, -0.5]], dtype=torch.float64)
    model = mean_flow_model(ExactDirac(c), (2,), p=0.0).double()
    x0 = c.expand(64, 2)
    noise = torch.randn(64, 2, dtype=torch.float64)
    t = torch.rand(64, dtype=torch.float64) * 0.9 + 0.1
    r = t * torch.rand(64, dtype=torch.float64)
    u, target = model.objective.terms(model, x0, noise, r, t)
    torch.testing.assert_close(u, noise - x0)
    torch.testing.assert_close(target, u)


def test_jvp_is_the_total_time_derivative():
    """du/dt from the JVP equals a central finite difference along the path (z + h v, t + h) with r fixed.
    (The sinusoidal time features are float32: time_scale 1 keeps their rounding below the difference's.)"""
    torch.manual_seed(0)
    net = perturb_zero_layers(MLP((3,), width=32, depth=2, time_embed_dim=8, time_scale=1.0, interval=True)).double()
    model = mean_flow_model(net, (3,)).double()
    x0, noise = torch.randn(8, 3, dtype=torch.float64), torch.randn(8, 3, dtype=torch.float64)
    t = torch.rand(8, dtype=torch.float64) * 0.8 + 0.1
    r = t * torch.rand(8, dtype=torch.float64)
    u, target = model.objective.terms(model, x0, noise, r, t)
    v = noise - x0
    z = (1 - t)[:, None] * x0 + t[:, None] * noise
    h = 1e-3

    def u_at(zz, tt):
        return model.net_output(zz, tt, None, interval=tt - r)

    du_dt = (u_at(z + h * v, t + h) - u_at(z - h * v, t - h)) / (2 * h)
    torch.testing.assert_close(target, v - (t - r)[:, None] * du_dt, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(u, u_at(z, t))


def test_the_loss_trains_the_network():
    net = MLP((2,), width=16, depth=2, time_embed_dim=8, interval=True)
    model = mean_flow_model(net, (2,))
    loss = model.loss(torch.randn(32, 2), BatchRandom.local(32))
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad is not None for p in net.parameters() if p.requires_grad)
    assert any(float(p.grad.abs().sum()) > 0 for p in net.interval_embed.parameters())


def test_interval_draws_and_adaptive_weight():
    rng = BatchRandom(torch.Generator().manual_seed(0), 20000, 0, 20000)
    r, t = draw_interval(rng, Uniform(), LinearPath(), 0.25, like=torch.zeros(1))
    assert bool((r <= t).all()) and abs(float((r != t).float().mean()) - 0.25) < 0.02
    err = torch.tensor([0.0, 1.0, 100.0])
    assert float(adaptive_loss(err, 0.0, 1e-3)) == pytest.approx(float(err.mean()))
    # p = 1: each example counts about equally, whatever its error
    assert float(adaptive_loss(err, 1.0, 1e-3)) == pytest.approx((0 + 1 / 1.001 + 100 / 100.001) / 3, rel=1e-6)


def test_mean_flow_needs_the_linear_path_and_velocity():
    net = MLP((2,), width=8, depth=1, interval=True)
    with pytest.raises(ValueError, match="linear path"):
        ContinuousFlow(VPPath(), net, (2,), objective=MeanFlow())
    with pytest.raises(ValueError, match="linear path"):
        ContinuousFlow(LinearPath(), net, (2,), target="eps", objective=MeanFlow())
    with pytest.raises(ValueError, match="class-conditional"):
        ContinuousFlow(LinearPath(), net, (2,), objective=MeanFlow(guidance=2.0))


def test_mean_flow_sampler_needs_a_mean_flow_model():
    plain = ContinuousFlow(LinearPath(), MLP((2,), width=8, depth=1), (2,))
    with pytest.raises(ValueError, match="MeanFlow model"):
        plain.sample(4, sampler="mean-flow", steps=1)


def test_sampler_steps_with_the_average_velocity():
    """One mean-flow step from t = 1 with the exact Dirac u lands exactly on the data point; Euler from the same
    model does too (straight paths), and the NFE is one per step."""
    c = torch.tensor([[1.5, -0.5]])
    model = mean_flow_model(ExactDirac(c), (2,))
    x, nfe = model.sample(16, sampler="mean-flow", steps=1, return_nfe=True)
    torch.testing.assert_close(x, c.expand(16, 2))
    assert nfe == 1


def test_config_builds_a_mean_flow_model_and_describes_it():
    cfg = ModelConfig(objective="mean-flow", time_sampler="logit-normal", logit_mean=-0.4,
                      meanflow=MeanFlowConfig(ratio=0.5))
    model = build_model(cfg, {"shape": [2], "kind": "points"})
    assert isinstance(model.objective, MeanFlow) and model.net.interval_embed is not None and model.net.takes_interval
    assert (model.objective.ratio, model.objective.p, model.objective.c) == (0.5, 1.0, 1e-3)
    assert model.target == "velocity"
    from flowforge.models import describe_model
    assert "MeanFlow" in describe_model(cfg)


def test_one_step_map_between_gaussians_is_close_to_the_exact_one():
    """Data N(mu, s^2 I): the linear path's ODE maps noise eps to mu + s eps, which one step of the exact average
    velocity reproduces. After a short fit, one mean-flow step is close to that map; one Euler step from t = 1
    (the velocity there is eps - mu) sends every sample to mu. Uniform times, so t = 1 is trained."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    mu, s = torch.tensor([1.0, -1.0]), 0.3
    cfg = ModelConfig(objective="mean-flow", meanflow=MeanFlowConfig(ratio=0.5),
                      net=NetConfig(width=64, depth=2, time_embed_dim=16))
    model = build_model(cfg, {"shape": [2], "kind": "points"})
    opt = torch.optim.Adam(model.parameters(), 2e-3)
    # a cosine decay: at a constant rate the one-step error of the last iterate swung between 0.15 and 0.21 with
    # the step count (400, 800, 1200) on an AVX512 machine, and crossed the bound there while passing on AVX2
    steps = 400
    decay = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 0.5 * (1 + math.cos(math.pi * i / steps)))
    for step in range(steps):
        loss = model.loss(mu + s * torch.randn(256, 2, generator=gen),
                          BatchRandom(torch.Generator().manual_seed(step), 256, 0, 256))
        opt.zero_grad()
        loss.backward()
        opt.step()
        decay.step()
    eps = torch.randn(4000, 2, generator=torch.Generator().manual_seed(1))
    exact = mu + s * eps
    one = model.sample(4000, sampler="mean-flow", steps=1, noise=eps)
    euler = model.sample(4000, sampler="euler", steps=1, noise=eps)
    rmse = lambda x: float((x - exact).square().sum(1).mean().sqrt())  # noqa: E731
    # Euler: about s sqrt(2) = 0.42; one mean-flow step, 0.12-0.15 over four seeds (float32 and float64)
    assert rmse(one) < 0.2 < 0.3 < rmse(euler), (rmse(one), rmse(euler))



@pytest.mark.parametrize("net", [
    lambda: UNet((1, 8, 8), channels=8, channel_mult=(1, 2), num_res_blocks=1, attention_levels=(1,), interval=True),
    lambda: DiT((1, 8, 8), size="tiny", patch=2, positions="rope", interval=True),
], ids=["unet", "dit"])
@pytest.mark.parametrize("bf16", [False, True], ids=["fp32", "bf16-autocast"])
def test_image_backbones_train_with_the_jvp(net, bf16):
    """Attention inside the JVP (the CPU flash kernel has no forward-mode derivative) and gradients to every
    weight the loss reaches; also under bf16 autocast, as ``train.precision: auto`` trains on AMX CPUs, where a
    plain GroupNorm once broke the U-Net's JVP (a float32 tangent met a bf16 convolution weight)."""
    model = mean_flow_model(perturb_zero_layers(net()), (1, 8, 8))
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss = model.loss(torch.randn(4, 1, 8, 8), BatchRandom.local(4))
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.net.parameters())


def test_checkpointing_is_refused_with_mean_flow():
    from flowforge.config import ConfigError

    cfg = ModelConfig(objective="mean-flow", net=NetConfig(name="dit", checkpoint=True))
    with pytest.raises(ConfigError, match="checkpoint"):
        build_model(cfg, {"shape": [1, 8, 8], "kind": "image"})


class LabelledConstant(nn.Module):
    """u = 0 for the null label, 1 for a class: the guided target's mixing can be read off directly."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.num_classes = num_classes
        self.anchor = nn.Parameter(torch.zeros(()))

    def forward(self, x, t, y, interval=None):
        return (y != self.num_classes).to(x.dtype)[:, None].expand_as(x) + 0 * self.anchor


def test_guidance_built_into_the_target():
    """omega v + (1 - omega - kappa) u(null) + kappa u(class) for labelled examples, v itself for null ones
    (r = t, so the target is that velocity)."""
    model = ContinuousFlow(LinearPath(), LabelledConstant(3), (2,), num_classes=3,
                           objective=MeanFlow(guidance=2.0, kappa=0.5))
    x0, noise = torch.randn(4, 2), torch.randn(4, 2)
    t = torch.full((4,), 0.5)
    labels = torch.tensor([0, 1, 3, 2])
    _, target = model.objective.terms(model, x0, noise, t, t, labels)
    v = noise - x0
    expected = 2.0 * v + 0.5 * 1.0 + (1 - 2.0 - 0.5) * 0.0
    torch.testing.assert_close(target[[0, 1, 3]], expected[[0, 1, 3]])
    torch.testing.assert_close(target[2], v[2])


def test_with_r_equal_t_the_loss_is_flow_matching():
    """ratio 0: every pair has r = t, the JVP term vanishes and the target is the conditional velocity eps - x0;
    with p = 0 the loss is flow matching's squared error (summed over dimensions) at the same draws."""
    torch.manual_seed(0)
    net = perturb_zero_layers(MLP((3,), width=16, depth=2, time_embed_dim=8, interval=True))
    mf = mean_flow_model(net, (3,), ratio=0.0, p=0.0)
    x = torch.randn(64, 3)
    rng = BatchRandom(torch.Generator().manual_seed(5), 64, 0, 64)
    noise = rng.randn((3,), like=x)  # the loss's own order of draws: noise, then the two times
    t, _ = (mf.objective.time_sampler.sample(rng, mf.path, like=x) for _ in range(2))  # r = t: the first draw
    u, target = mf.objective.terms(mf, x, noise, t, t)
    torch.testing.assert_close(target, noise - x)
    z = (1 - t)[:, None] * x + t[:, None] * noise
    fm_loss = (net(z, t, interval=torch.zeros(64)) - (noise - x)).square().sum(1).mean()
    loss = mf.loss(x, BatchRandom(torch.Generator().manual_seed(5), 64, 0, 64))
    torch.testing.assert_close(loss, fm_loss)


# ---------------------------------------------------------------------------- conventions a slip would break


class Recording(nn.Module):
    """``u = x * (1 + t) + interval`` (per coordinate), recording the times and intervals it is called with."""

    def __init__(self):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(()))
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, x, t, interval=None):
        interval = torch.zeros_like(t) if interval is None else interval
        self.calls.append((t.detach().clone(), interval.detach().clone()))
        return x * (1 + t[:, None]) + interval[:, None] + 0 * self.anchor


def test_sampler_jumps_z_r_equals_z_t_minus_interval_times_u():
    """Three mean-flow steps on the grid 1 -> 2/3 -> 1/3 -> 0: each is ``z_r = z_t - (t - r) u(z_t, r, t)`` with the
    net called at time t and interval ``t - r`` (in [0, 1], not 1000x), as the objective trains it."""
    net = Recording()
    model = mean_flow_model(net, (2,))
    noise = torch.randn(5, 2)
    seen = []
    x = model.sample(5, sampler="mean-flow", steps=3, grid="uniform", noise=noise,
                     callback=lambda rec: seen.append((rec.t, rec.t_next)))
    z = noise.clone()
    for t, r in ((1.0, 2 / 3), (2 / 3, 1 / 3), (1 / 3, 0.0)):
        z = z - (t - r) * (z * (1 + t) + (t - r))
    torch.testing.assert_close(x, z)
    assert [round(t, 6) for t, _ in seen] == [1.0, round(2 / 3, 6), round(1 / 3, 6)]
    for (t, interval), (t_exp, r_exp) in zip(net.calls, seen):
        torch.testing.assert_close(t, torch.full((5,), t_exp))
        torch.testing.assert_close(interval, torch.full((5,), t_exp - r_exp))


@pytest.mark.parametrize("net, data", [
    ("mlp", {"shape": [2], "kind": "points"}),
    ("unet", {"shape": [1, 8, 8], "kind": "image"}),
    ("dit", {"shape": [1, 8, 8], "kind": "image"}),
], ids=["mlp", "unet", "dit"])
def test_interval_is_embedded_on_the_scale_of_t(net, data):
    """The interval ``t - r`` and the time t are both in [0, 1] and the net embeds both with the same factor,
    MeanFlow's time scale 1 (not flow matching's 1000): a net whose interval features ran 1000x faster than its time
    features would see ``u(z, r, t)`` change with r far faster than with t."""
    from flowforge.nets.conditioning import SinusoidalEmbedding

    extra = {"patch": 2, "size": "tiny"} if net == "dit" else {}
    model = build_model(ModelConfig(objective="mean-flow", net=NetConfig(name=net, **extra)), data)
    time_embeds = [m for name, m in model.net.named_modules() if isinstance(m, SinusoidalEmbedding)
                   and not name.startswith("interval_embed")]
    interval_embed = model.net.interval_embed[0]
    assert isinstance(interval_embed, SinusoidalEmbedding) and time_embeds
    assert interval_embed.scale == MeanFlow.time_scale == 1.0
    assert all(m.scale == interval_embed.scale for m in time_embeds)
    plain = build_model(ModelConfig(net=NetConfig(name=net, **extra)), data)  # flow matching: t scaled by 1000
    assert [m.scale for m in plain.net.modules() if isinstance(m, SinusoidalEmbedding)][0] == 1000.0


def test_objective_feeds_t_and_the_interval_t_minus_r():
    """The objective evaluates the net at ``z_t = (1 - t) x0 + t eps`` (t = 1 is noise, as the sampler starts) with
    time t and interval ``t - r``, on the same scale as the sampler's."""
    net = Recording()
    model = mean_flow_model(net, (2,), p=0.0)
    x0, noise = torch.randn(6, 2), torch.randn(6, 2)
    t = torch.tensor([0.2, 0.4, 0.6, 0.8, 1.0, 0.5])
    r = torch.tensor([0.0, 0.4, 0.1, 0.3, 0.0, 0.5])
    u, _ = model.objective.terms(model, x0, noise, r, t)
    got_t, got_interval = net.calls[-1]
    torch.testing.assert_close(got_t, t)
    torch.testing.assert_close(got_interval, t - r)
    z = (1 - t)[:, None] * x0 + t[:, None] * noise
    torch.testing.assert_close(u, z * (1 + t[:, None]) + (t - r)[:, None])


def test_target_and_weight_are_under_a_stop_gradient():
    """The target carries no gradient, so the loss's gradient is that of ``w (u - const)^2``; and the adaptive
    weight is constant too: d/d err of ``sg(w) err`` is ``w``, not the derivative of ``err / (err + c)``."""
    torch.manual_seed(0)
    net = perturb_zero_layers(MLP((2,), width=16, depth=2, time_embed_dim=8, time_scale=1.0, interval=True))
    model = mean_flow_model(net, (2,), p=0.0)
    x0, noise = torch.randn(16, 2), torch.randn(16, 2)
    t = torch.rand(16) * 0.8 + 0.2
    r = t * torch.rand(16)
    u, target = model.objective.terms(model, x0, noise, r, t)
    assert u.requires_grad and not target.requires_grad
    (u - target).square().sum(1).mean().backward()
    grads = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    u2, target2 = model.objective.terms(model, x0, noise, r, t)
    (u2 - target2.clone()).square().sum(1).mean().backward()
    for a, b in zip(grads, (p.grad for p in net.parameters())):
        torch.testing.assert_close(a, b)
    err = torch.tensor([0.5, 2.0], requires_grad=True)
    adaptive_loss(err, 1.0, 1e-3).backward()
    torch.testing.assert_close(err.grad, 1 / (err.detach() + 1e-3) / 2)


@pytest.mark.parametrize("ratio", [0.0, 0.25, 0.5, 0.75])
def test_interval_sampler_share_of_r_not_t(ratio):
    """``r != t`` on a fraction ``ratio`` of pairs, ``r <= t`` always. There ``(r, t)`` are the smaller and larger
    of two uniform draws (means 1/3 and 2/3); ``r = t`` pairs take one draw, flow matching's law (mean 1/2), or with
    ``flow_matching_times=False`` (the paper's code) the larger of the two (mean 2/3)."""
    for fm_times, same_mean in ((True, 1 / 2), (False, 2 / 3)):
        rng = BatchRandom(torch.Generator().manual_seed(1), 20000, 0, 20000)
        r, t = draw_interval(rng, Uniform(), LinearPath(), ratio, like=torch.zeros(1), flow_matching_times=fm_times)
        apart = r != t
        assert bool((r <= t).all())
        assert abs(float(apart.float().mean()) - ratio) < 0.015
        assert abs(float(t[~apart].mean()) - same_mean) < 0.01
        if ratio:
            assert abs(float(r[apart].mean()) - 1 / 3) < 0.02 and abs(float(t[apart].mean()) - 2 / 3) < 0.02


def test_weightings_and_where_their_minimisers_lie():
    """For a scalar prediction u fitting targets {0 (x3), 1 (x1)} the least-squares minimiser is the mean 0.25.
    The paper's per-example weight (p = 1) moves it towards the majority (the error that is already small weighs
    most); one weight per group (``group``) or the weight on r != t pairs only (``apart``, here every pair has
    r = t) leaves it at the mean."""
    targets = torch.tensor([0.0, 0.0, 0.0, 1.0])
    same = torch.zeros(4, dtype=torch.bool)

    def minimiser(**kw) -> float:
        u = torch.tensor(0.5, requires_grad=True)
        opt = torch.optim.Adam([u], lr=0.05)
        decay = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 0.5 * (1 + math.cos(math.pi * i / 200)))
        for _ in range(200):
            opt.zero_grad()
            adaptive_loss((u - targets).square(), c=1e-3, apart=same, **kw).backward()
            opt.step()
            decay.step()
        return float(u.detach())

    assert minimiser(p=0.0) == pytest.approx(0.25, abs=1e-3)
    assert minimiser(p=1.0, weighting="group") == pytest.approx(0.25, abs=1e-3)
    assert minimiser(p=1.0, weighting="apart") == pytest.approx(0.25, abs=1e-3)
    assert minimiser(p=1.0, weighting="example") < 0.1
    err = torch.tensor([1.0, 3.0, 4.0, 8.0])
    apart = torch.tensor([False, False, True, True])
    # group: weights 1 / (2 + c) and 1 / (6 + c); apart: 1 on r = t pairs, 1 / (err + c) on r != t pairs
    group = ((1 + 3) / 2.001 + (4 + 8) / 6.001) / 4
    assert float(adaptive_loss(err, 1.0, 1e-3, apart, "group")) == pytest.approx(group)
    assert float(adaptive_loss(err, 1.0, 1e-3, apart, "apart")) == pytest.approx((1 + 3 + 4 / 4.001 + 8 / 8.001) / 4)
    with pytest.raises(ValueError, match="weighting"):
        MeanFlow(weighting="per-pixel")


def test_exact_mixture_velocity_matches_monte_carlo():
    """benchmarks.meanflow_weighting's closed-form ``E[v | z_t]`` for 8 Gaussians (the evidence for the choice of
    p rests on it) against importance weighting over data draws: ``eps = (z - a x) / t`` given x, weighted by
    ``N(z; a x, t^2 I)``."""
    from benchmarks.meanflow_weighting import eight_gaussians_mixture, exact_velocity

    centres, s = eight_gaussians_mixture(0.5)
    gen = torch.Generator().manual_seed(0)
    x = centres[torch.randint(8, (200000,), generator=gen)] + s * torch.randn(200000, 2, generator=gen,
                                                                               dtype=torch.float64)
    for t_value, z in ((0.3, torch.tensor([1.0, 0.5])), (0.6, torch.tensor([-0.7, 1.2])), (0.9, torch.zeros(2))):
        a = 1 - t_value
        eps = (z.double() - a * x) / t_value  # (N, 2)
        w = torch.softmax(-eps.square().sum(1) / 2, 0)  # N(z; a x, t^2 I), normalised
        mc = (w[:, None] * (eps - x)).sum(0)
        exact = exact_velocity(z.double()[None], torch.tensor([t_value], dtype=torch.float64), centres, s)[0]
        torch.testing.assert_close(exact, mc, atol=0.03, rtol=0.0)
