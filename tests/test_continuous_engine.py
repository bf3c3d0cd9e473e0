"""Continuous models through the engine: train, evaluate, sample and inpaint from a run directory."""

import math
import subprocess
import sys

import pytest
import torch

from flowforge import evaluate, load, load_config
from flowforge.config import ConfigError
from flowforge.train import train


@pytest.mark.parametrize("extra", [
    {"model.path": "vp", "model.target": "eps", "sample.sampler": "dpm++2m"},
    {"model.path": "edm", "model.precond": "edm", "model.time_sampler": "log-normal", "model.sigma_data": 1.0,
     "sample.sampler": "edm-stochastic", "sample.s_churn": 10.0},
    {"model.path": "linear", "model.time_sampler": "logit-normal", "model.ot_coupling": True,
     "sample.sampler": "ddim", "sample.eta": 0.3},
])
def test_continuous_models_train_evaluate_and_reload(tmp_path, tiny, extra):
    # long enough to learn the moons (a few seconds each): 400 steps of a 2x64 MLP, an EMA fit for that length
    budget = {"train.steps": 400, "model.net.width": 64, "train.batch_size": 128, "train.lr": 3e-3,
              "train.warmup_steps": 10, "train.ema_decay": 0.9, "train.ckpt_every": 400, "sample.steps": 25}
    result = train(load_config("configs/rf-moons.yaml", tiny(tmp_path / "run", **extra, **budget)), progress=False)
    record = evaluate(tmp_path / "run")
    assert record["sampler"] == extra["sample.sampler"]
    # the trained model is closer to the data than a Gaussian with the data's mean and covariance (measured:
    # 0.012-0.013 against 0.021, the noise floor 0.0006)
    assert record["model"]["energy_distance"] < 0.85 * record["matched_gaussian"]["energy_distance"], record
    straight = record["straightness"]  # the probability-flow ODE's straightness, on 300 paths (eval.n_samples)
    assert straight["n"] == 300 and straight["steps"] == 25 and 0 < straight["value"] < 10
    assert 0 < straight["stderr"] < straight["value"]
    lk = record["likelihood"]  # ODE likelihood, exact divergence in 2-D
    assert math.isfinite(lk["nll"]) and math.isfinite(lk["bits_per_dim"])
    model = load(tmp_path / "run")
    for sampler in ("euler", "heun", "ddim", "dpm++2m"):  # any sampler on the trained model
        x = model.sample(5, sampler=sampler, steps=4)
        assert x.shape == (5, 2) and torch.isfinite(x).all()
    assert torch.isfinite(result.model.log_prob(torch.zeros(3, 2))).all()


def test_class_conditional_unet_on_digits_with_guidance_and_cli(tmp_path, tiny):
    over = {"data.name": "digits", "model.net.name": "unet", "model.net.channels": 8, "model.net.channel_mult": "[1,2]",
            "model.net.attention_levels": "[1]", "model.net.num_res_blocks": 1, "model.num_classes": 10,
            "model.label_dropout": 0.2, "train.steps": 4, "train.batch_size": 16, "train.warmup_steps": 0,
            "sample.guidance": 2.0, "sample.steps": 3, "eval.n_samples": 40}
    overrides = tiny(tmp_path / "run", **over)
    overrides = [o for o in overrides if not o.startswith(("model.net.width", "model.net.depth"))]
    cfg = load_config("configs/fm-digits.yaml", overrides)
    train(cfg, progress=False)
    model = load(tmp_path / "run")
    x = model.sample(10, labels=torch.arange(10), guidance=3.0, steps=2)
    assert x.shape == (10, 1, 8, 8) and torch.isfinite(x).all()
    levels = (x + 1) / 2 * 16  # digits: 17 levels on [-1, 1]; samples come back on them, like the flows'
    assert torch.allclose(levels, levels.round(), atol=1e-5) and levels.min() >= 0 and levels.max() <= 16
    raw = model.sample(10, steps=2, dequantized=True, generator=torch.Generator().manual_seed(0))
    assert not torch.allclose((raw + 1) / 2 * 16, ((raw + 1) / 2 * 16).round(), atol=1e-3)  # the ODE's end points
    snapped = model.sample(10, steps=2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(snapped, model.from_model_space(raw))
    cli = [sys.executable, "-m", "flowforge.cli"]
    for args in (["sample", str(tmp_path / "run"), "--n", "10", "--out", str(tmp_path / "s.png")],
                 ["sample", str(tmp_path / "run"), "--n", "10", "--out", str(tmp_path / "g.npy"), "--guidance", "4",
                  "--grid", "shifted", "--sampler", "dpm++2m", "--steps", "3"],
                 ["inpaint", str(tmp_path / "run"), "--mask", "left", "--n", "2", "--steps", "3", "--sampler", "ddpm",
                  "--resample", "2", "--out", str(tmp_path / "i.png")]):
        proc = subprocess.run(cli + args, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "s.png").stat().st_size > 0 and (tmp_path / "i.png").stat().st_size > 0


def test_model_config_errors_name_the_fix(tmp_path, tiny):
    with pytest.raises(ConfigError, match="mlp has no class input; use model.net.name=unet"):
        train(load_config("configs/rf-moons.yaml", tiny(tmp_path / "a", **{"model.num_classes": 2})), progress=False)
    with pytest.raises(ConfigError, match=r"unet needs images \(C, H, W\)"):
        train(load_config("configs/rf-moons.yaml", tiny(tmp_path / "b", **{"model.net.name": "unet"})), progress=False)
    with pytest.raises(ConfigError, match="model.path: got 'vpp'"):
        load_config("configs/rf-moons.yaml", ["model.path=vpp"])
