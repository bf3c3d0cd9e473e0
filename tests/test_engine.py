"""The engine's fast paths give the plain results: EMA schedules, fused AdamW, the batched divergence check,
precision by capability."""

import json

import pytest
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from flowforge import load, load_config
from flowforge.data import load_dataset
from flowforge.errors import TrainingDiverged
from flowforge.metrics import energy_distance
from flowforge.models import ContinuousFlow
from flowforge.nets import MLP
from flowforge.runs import checkpoint_dirs
from flowforge.train import train
from flowforge.train.loop import clip_gradients
from flowforge.train.ema import EMA, ema_decay_schedule, make_ema, power_exponent
from flowforge.train.precision import choose_precision, emulated_bf16_warning, measured_emulation_speed


def _net(seed=0):
    torch.manual_seed(seed)
    return MLP(shape=(2,), width=32, depth=2, time_embed_dim=16)


def _train_steps(net, opt, steps, on_step=None, seed=0):
    gen = torch.Generator().manual_seed(seed)
    for step in range(1, steps + 1):
        x = torch.randn(64, 2, generator=gen)
        t = torch.rand(64, generator=gen)
        loss = (net(x, t) - x).square().mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if on_step is not None:
            on_step(step)


def test_constant_ema_matches_torchs_averaged_model():
    net = _net()
    ours, theirs = make_ema(net, "constant", 0.99), AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(0.99),
                                                                  use_buffers=True)
    opt = torch.optim.SGD(net.parameters(), lr=0.05)

    def both(step):
        ours.update(net, step)
        theirs.update_parameters(net)

    _train_steps(net, opt, 300, both)
    for a, b in zip(ours.module.parameters(), theirs.module.parameters()):
        assert torch.allclose(a, b, rtol=1e-6, atol=1e-7)
    assert ours.n_averaged == 300


def test_ema_schedules():
    warm = ema_decay_schedule("warmup", 0.999, 0.05)
    assert warm(1) == pytest.approx(2 / 11) and warm(100) == pytest.approx(101 / 110) and warm(20000) == 0.999
    gamma = power_exponent(0.05)
    power = ema_decay_schedule("power", 0.999, 0.05)
    assert power(1) == 0.0 and power(1000) == pytest.approx((1 - 1e-3) ** (gamma + 1))
    # the power profile's relative width is sigma_rel (EDM2, eq. 3): std of tau^gamma on [0, 1]
    g = gamma
    assert ((g + 1) / ((g + 2) ** 2 * (g + 3))) ** 0.5 == pytest.approx(0.05)
    # the first update copies the weights, whatever the schedule says
    net = _net()
    ema = EMA(_net(seed=1), warm)
    ema.update(net, 1)
    assert all(torch.equal(a, b) for a, b in zip(ema.module.parameters(), net.parameters()))


def test_fused_adamw_matches_the_per_parameter_loop():
    plain, fused = _net(), _net()
    opt_plain = torch.optim.AdamW(plain.parameters(), lr=1e-3, foreach=False)
    opt_fused = torch.optim.AdamW(fused.parameters(), lr=1e-3, fused=True)
    _train_steps(plain, opt_plain, 300)
    _train_steps(fused, opt_fused, 300)
    for a, b in zip(plain.parameters(), fused.parameters()):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)


def test_clipping_inside_the_fused_step_matches_clip_grad_norm():
    # max_norm 0.05: most of the 300 steps are clipped
    plain, fused = _net(), _net()
    opt_plain = torch.optim.AdamW(plain.parameters(), lr=1e-3, foreach=False)
    opt_fused = torch.optim.AdamW(fused.parameters(), lr=1e-3, fused=True)
    gen = torch.Generator().manual_seed(0)
    norms = []
    for _ in range(300):
        x, t = torch.randn(64, 2, generator=gen), torch.rand(64, generator=gen)
        for net, opt in ((plain, opt_plain), (fused, opt_fused)):
            (net(x, t) - x).square().mean().backward()
            if net is plain:
                norms.append(float(torch.nn.utils.clip_grad_norm_(net.parameters(), 0.05)))
            else:
                assert float(clip_gradients(opt, list(net.parameters()), 0.05)) == pytest.approx(norms[-1], rel=1e-4)
            opt.step()
            opt.zero_grad(set_to_none=True)
    assert sum(n > 0.05 for n in norms) > 150
    for a, b in zip(plain.parameters(), fused.parameters()):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)


def test_fused_step_skips_a_non_finite_gradient():
    net = _net()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, fused=True)
    before = [p.detach().clone() for p in net.parameters()]
    x = torch.randn(8, 2)
    (net(x, torch.rand(8)) * float("nan")).sum().backward()
    norm = clip_gradients(opt, list(net.parameters()), 1.0)
    opt.step()
    assert not torch.isfinite(norm)
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))


def test_engine_uses_fused_adamw_and_says_so(tmp_path, tiny):
    result = train(load_config("configs/rf-moons.yaml", tiny(tmp_path / "run", **{"train.steps": 10})),
                   progress=False)
    engine = json.loads((checkpoint_dirs(tmp_path / "run")[-1] / "state.json").read_text())["engine"]
    assert engine["optimizer"] == "AdamW (fused)" and engine["precision"].startswith("fp32 (train.precision=fp32; ")
    report = (tmp_path / "run/report.md").read_text()
    assert "AdamW (fused)" in report and "warm-up to 0.999" in report
    assert result.ema is not None


def test_divergence_between_log_lines_is_caught_before_the_checkpoint(tmp_path, tiny, monkeypatch):
    # NaN at step 9; log lines every 4 steps, checkpoint at 10: the check before the checkpoint finds step 9
    real_loss = ContinuousFlow.loss
    calls = {"n": 0}

    def poisoned(self, x, rng=None, labels=None):
        calls["n"] += torch.is_grad_enabled()
        loss = real_loss(self, x, rng, labels)
        return loss * float("nan") if calls["n"] == 9 else loss

    monkeypatch.setattr(ContinuousFlow, "loss", poisoned)
    cfg = load_config("configs/rf-moons.yaml", tiny(tmp_path / "run", **{"train.log_every": 4}))
    with pytest.raises(TrainingDiverged, match=r"step 9: the loss is not finite.*no checkpoint was written"):
        train(cfg, progress=False)
    assert checkpoint_dirs(tmp_path / "run") == []
    records = [json.loads(line) for line in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r.get("kind", "train") == "train"] == [4, 8]  # nothing diverged logged


def test_short_runs_ema_is_not_worse_than_its_raw_weights(tmp_path, tiny):
    # 150 steps: a constant 0.999 EMA would still be 86% the initial network; the warm-up EMA averages the last
    # ~15 steps, and samples at least as well as the raw weights (up to the noise of 1000 samples)
    cfg = load_config("configs/rf-moons.yaml", tiny(tmp_path / "run", **{
        "train.steps": 150, "train.ckpt_every": 150, "train.log_every": 50, "model.net.width": 64}))
    train(cfg, progress=False)
    reference = load_dataset(cfg.data).reference(1000, seed=1)
    scores = {}
    for ema in (True, False):
        model = load(tmp_path / "run", ema=ema)
        with torch.no_grad():
            x = model.sample(1000, steps=20, generator=torch.Generator().manual_seed(0))
        scores[ema] = energy_distance(x, reference)
    assert scores[True] <= scores[False] * 1.25 + 0.002, scores


def test_precision_auto_follows_the_hardware():
    cpu = torch.device("cpu")
    auto = choose_precision("auto", cpu)
    assert auto.precision == ("bf16" if auto.native_bf16 else "fp32")
    assert choose_precision("fp32", cpu).precision == "fp32" and choose_precision("bf16", cpu).precision == "bf16"
    assert "CPU capability" in auto.describe()
    # the warning quotes the stored measurement of a CPU without native bf16
    measured = measured_emulation_speed("AVX2")
    assert measured is not None and not measured["native_bf16"] and measured["bf16_over_fp32"] < 1
    warning = emulated_bf16_warning(choose_precision("bf16", cpu))
    assert f"{measured['bf16_over_fp32']:.2f}x the speed of fp32" in warning


def test_package_bf16_figures_agree_with_the_benchmark_results():
    from tools import bf16_speed_table

    results = json.loads(bf16_speed_table.RESULTS_FILE.read_text())
    assert json.loads(bf16_speed_table.PACKAGE_FILE.read_text()) == bf16_speed_table.package_summary(results), \
        "run `make library-data` (python -m tools.bf16_speed_table) again"
