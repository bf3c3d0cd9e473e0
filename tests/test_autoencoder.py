"""The autoencoder (model.kind autoencoder): diffusers' AutoencoderKL format, its objective, training by the engine
and the save_pretrained / from_pretrained round trip."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("diffusers")

from flowforge.config import ConfigError, load_config  # noqa: E402
from flowforge.errors import RunError  # noqa: E402
from flowforge.data import load_dataset  # noqa: E402
from flowforge.data.latents import load_autoencoder  # noqa: E402
from flowforge.jobs.latent_eval import reconstruction_held_out  # noqa: E402
from flowforge.models import build_model  # noqa: E402
from flowforge.models.autoencoder import Autoencoder  # noqa: E402
from flowforge.models.objectives.autoencoder import AutoencoderLoss, kl_to_standard_normal  # noqa: E402
from flowforge.nets.autoencoder import KLAutoencoder  # noqa: E402
from flowforge.runs import load_run  # noqa: E402
from flowforge.train import train  # noqa: E402

DIGITS = {"name": "digits", "kind": "image", "shape": [1, 8, 8], "value_range": [-1.0, 1.0], "levels": 17}


def ae_overrides(run_dir, **extra) -> list[str]:
    """A tiny autoencoder on the 8 x 8 digits that trains in a second or two."""
    base = {"run.dir": str(run_dir), "data.name": "digits", "data.image_range": "symmetric",
            "model.kind": "autoencoder", "model.autoencoder.width": 8, "model.autoencoder.groups": 4,
            "model.autoencoder.downsampling": 2, "model.autoencoder.latent_channels": 3,
            "train.steps": 4, "train.batch_size": 32, "train.warmup_steps": 1, "train.log_every": 2,
            "train.sample_every": 0, "train.ckpt_every": 2, "train.tensorboard": False}
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]


def test_encode_decode_shapes_and_settings():
    ae = KLAutoencoder.build(1, latent_channels=16, width=8, downsampling=4, groups=4)
    x = torch.randn(2, 1, 28, 28)
    mean, logvar = ae.encode(x)
    assert mean.shape == logvar.shape == (2, 16, 7, 7) == (2, *ae.latent_shape((1, 28, 28)))
    assert ae.decode(mean).shape == x.shape
    assert (ae.latent_channels, ae.downsampling) == (16, 4)
    with pytest.raises(ValueError, match="power of 2"):
        KLAutoencoder.build(1, 4, downsampling=3)
    with pytest.raises(ValueError, match="do not divide"):
        ae.latent_shape((1, 30, 30))


def test_sd_style_scaling_and_shift_come_from_the_config(tmp_path):
    from diffusers import AutoencoderKL

    vae = AutoencoderKL(block_out_channels=(8,), norm_num_groups=4, latent_channels=16, scaling_factor=1.5305,
                        shift_factor=0.0609, down_block_types=("DownEncoderBlock2D",),
                        up_block_types=("UpDecoderBlock2D",))
    vae.save_pretrained(tmp_path / "sd3" / "vae")  # a pipeline folder: the vae/ subfolder is found
    ae = load_autoencoder(str(tmp_path / "sd3"))
    assert (ae.scale, ae.shift, ae.latent_channels) == (1.5305, 0.0609, 16)
    z = torch.randn(2, 16, 4, 4)
    assert torch.allclose(ae.from_latent(ae.to_latent(z)), z, atol=1e-6)


def test_objective_terms_and_gradients():
    assert float(kl_to_standard_normal(torch.zeros(2, 3), torch.zeros(2, 3)).abs().max()) == 0.0
    kl = kl_to_standard_normal(torch.ones(1, 4), torch.zeros(1, 4))  # 0.5 * mean^2 summed
    assert float(kl) == pytest.approx(2.0)
    model = build_model(load_config(None, ["model.kind=autoencoder", "model.autoencoder.width=8",
                                           "model.autoencoder.groups=4", "model.autoencoder.downsampling=2",
                                           "model.autoencoder.perceptual=0.5"]).model, DIGITS)
    assert isinstance(model, Autoencoder) and isinstance(model.objective, AutoencoderLoss)
    x = torch.rand(4, 1, 8, 8) * 2 - 1
    terms = model.objective.terms(model, x)
    assert set(terms) == {"reconstruction", "kl", "perceptual"}
    model.loss(x).backward()
    assert all(p.grad is not None for p in model.autoencoder.parameters() if p.requires_grad)
    assert not any(k.startswith("objective") for k in model.state_dict())  # the pinned CNN is not trained or saved


def test_refusals():
    with pytest.raises(ConfigError, match="image_range=symmetric"):
        build_model(load_config(None, ["model.kind=autoencoder"]).model, {**DIGITS, "value_range": [0.0, 1.0]})
    with pytest.raises(ConfigError, match="unset data.latent"):
        build_model(load_config(None, ["model.kind=autoencoder"]).model, {**DIGITS, "latent": {"source": "x"}})
    with pytest.raises(ConfigError, match="no labels"):
        build_model(load_config(None, ["model.kind=autoencoder", "model.num_classes=10"]).model, DIGITS)
    with pytest.raises(ValueError, match="not a flow"):
        AutoencoderLoss().check(build_model(load_config(None, ["model.net.name=unet"]).model, DIGITS))


def test_trained_by_the_engine_and_round_trips_through_diffusers(tmp_path):
    config = load_config(None, ae_overrides(tmp_path / "ae"))
    result = train(config, progress=False)
    assert result is not None
    run = load_run(tmp_path / "ae")
    assert isinstance(run.model, Autoencoder) and run.model.sample(3).shape == (3, 1, 8, 8)
    scores = reconstruction_held_out(run, load_dataset(config.data), 20, lambda phase: None)  # flowforge eval's
    assert 0 < scores["reconstruction"]["ssim"] <= 1 and scores["reconstruction"]["psnr"] > 0
    assert "latent_likelihood" not in scores
    ae = load_autoencoder(str(tmp_path / "ae"))  # the run's EMA weights as an AutoencoderKL
    assert torch.equal(ae.state_dict()["vae.decoder.conv_out.weight"],
                       run.model.state_dict()["autoencoder.vae.decoder.conv_out.weight"])
    ae.save_pretrained(tmp_path / "folder")
    assert (tmp_path / "folder" / "config.json").is_file()
    back = KLAutoencoder.from_pretrained(tmp_path / "folder")
    x = torch.rand(5, 1, 8, 8) * 2 - 1
    with torch.no_grad():
        assert torch.equal(back.decode(back.encode(x)[0]), ae.decode(ae.encode(x)[0]))


# --------------------------------------------------------------------------- the patch discriminator (LDM)

DISC = {"model.autoencoder.disc_weight": 0.5, "model.autoencoder.disc_layers": 1, "model.autoencoder.disc_width": 8,
        "train.ema_decay": 0.9, "train.keep_last": 5}


def checkpoint_tensors(ckpt) -> dict[str, dict[str, torch.Tensor]]:
    """Every tensor of a checkpoint, by file (weights, EMA, both optimisers' moments)."""
    from safetensors.torch import load_file

    return {f.name: load_file(str(f)) for f in sorted(ckpt.glob("*.safetensors"))}


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].keys() == b[name].keys(), name
        for key in a[name]:
            assert torch.equal(a[name][key], b[name][key]), (name, key)


def test_generator_loss_without_a_discriminator_is_the_sum_of_its_terms():
    """Off (the default), the loss is exactly reconstruction + kl * KL + perceptual * d_phi, as before the
    discriminator existed, and the model has no adversary."""
    from flowforge.rng import BatchRandom

    model = build_model(load_config(None, ae_overrides("unused", **{"model.autoencoder.perceptual": 0.5})).model,
                        DIGITS)
    assert model.adversary is None and model.objective.adversary is None
    x = torch.rand(4, 1, 8, 8) * 2 - 1
    terms = model.objective.terms(model, x, BatchRandom(torch.Generator().manual_seed(3), 4, 0, 4))
    loss = model.loss(x, BatchRandom(torch.Generator().manual_seed(3), 4, 0, 4))
    assert torch.equal(loss, terms["reconstruction"] + 1e-6 * terms["kl"] + 0.5 * terms["perceptual"])


def test_hinge_loss_and_adaptive_weight_follow_their_formulas():
    from flowforge.models.objectives.autoencoder import adaptive_weight, hinge_discriminator_loss

    real, fake = torch.tensor([[0.5], [2.0]]), torch.tensor([[-3.0], [0.25]])
    expected = 0.5 * ((0.5 + 0.0) / 2 + (0.0 + 1.25) / 2)  # mean relu(1 - real), mean relu(1 + fake)
    assert float(hinge_discriminator_loss(real, fake)) == pytest.approx(expected)
    w = torch.randn(3, 3, requires_grad=True)
    x = torch.randn(5, 3)
    rec, gen = (x @ w).abs().mean(), -(x @ w).tanh().mean()
    lam = adaptive_weight(rec, gen, w, 0.5)
    g_rec, = torch.autograd.grad((x @ w).abs().mean(), w)
    g_gen, = torch.autograd.grad(-(x @ w).tanh().mean(), w)
    assert float(lam) == pytest.approx(0.5 * float(g_rec.norm() / (g_gen.norm() + 1e-4)), rel=1e-6)
    assert not lam.requires_grad


def test_discriminator_settings_are_checked():
    from flowforge.errors import UserError

    for key, value in (("disc_start", -1), ("disc_weight", -0.5), ("disc_layers", 0), ("disc_width", 0)):
        with pytest.raises(UserError, match=f"model.autoencoder.{key}"):
            load_config(None, ae_overrides("unused", **{f"model.autoencoder.{key}": value}))
    with pytest.raises(UserError, match="lower model.autoencoder.disc_layers"):  # 8 px halved three times
        build_model(load_config(None, ae_overrides("unused", **{**DISC, "model.autoencoder.disc_layers": 3})).model,
                    DIGITS)


def test_discriminator_waits_for_its_start_then_both_train(tmp_path):
    from flowforge.runs import read_metrics
    from flowforge.runs.checkpoint import read_optimizer_state

    off = train(load_config(None, ae_overrides(tmp_path / "off", **{**DISC, "model.autoencoder.disc_weight": 0})),
                progress=False)
    assert not list((off.run_dir / "checkpoints").glob("*/adversary*"))
    assert not any("disc_loss" in r for r in read_metrics(off.run_dir))
    # started at step 4 of 4: not one step with it, so the autoencoder trains bit for bit as without it
    late = load_config(None, ae_overrides(tmp_path / "late", **{**DISC, "model.autoencoder.disc_start": 4}))
    train(late, progress=False)
    ckpts = {name: tmp_path / name / "checkpoints" / "step-0000004" for name in ("off", "late")}
    both = {name: checkpoint_tensors(c) for name, c in ckpts.items()}
    disc = {k: both["late"].pop(k) for k in ("adversary.safetensors", "adversary_optimizer.safetensors")}
    assert_same(both["off"], both["late"])
    torch.manual_seed(late.run.seed)  # as the engine builds it: the discriminator's initial weights, untouched
    fresh = build_model(late.model, DIGITS).adversary.net.state_dict()
    assert all(torch.equal(disc["adversary.safetensors"][k], v) for k, v in fresh.items())
    assert disc["adversary_optimizer.safetensors"] == {}  # no moments: it never stepped
    assert not any("disc_loss" in r for r in read_metrics(tmp_path / "late"))
    # started at step 2: steps 3 and 4 train the discriminator, and the autoencoder differs from step 3 on
    early = train(load_config(None, ae_overrides(tmp_path / "early", **{**DISC, "model.autoencoder.disc_start": 2})),
                  progress=False)
    step2, step4 = (tmp_path / "early" / "checkpoints" / f"step-000000{s}" for s in (2, 4))
    assert_same({k: v for k, v in checkpoint_tensors(step2).items() if not k.startswith("adversary")},
                checkpoint_tensors(tmp_path / "off" / "checkpoints" / "step-0000002"))
    assert not torch.equal(early.model.state_dict()["autoencoder.vae.decoder.conv_out.weight"],
                           off.model.state_dict()["autoencoder.vae.decoder.conv_out.weight"])
    saved = checkpoint_tensors(step4)
    assert all(k.startswith("autoencoder.") for k in [*saved["ema.safetensors"], *saved["model.safetensors"]])
    trained = saved["adversary.safetensors"]
    assert all(not torch.equal(trained[k], v) for k, v in fresh.items() if k.endswith("weight"))
    moments = read_optimizer_state(step4 / "adversary_optimizer.safetensors")["state"]
    assert {float(s["step"]) for s in moments.values()} == {2.0}
    logged = [r for r in read_metrics(tmp_path / "early") if "loss" in r]
    assert "disc_loss" not in logged[0] and {"disc_loss", "gen_loss", "disc_lambda"} <= set(logged[1])


def test_resume_restores_the_discriminator_and_its_optimiser(tmp_path):
    import shutil

    config = load_config(None, ae_overrides(tmp_path / "run", **{**DISC, "model.autoencoder.disc_start": 1,
                                                                 "train.steps": 6}))
    train(config, progress=False)
    ckpts = tmp_path / "run" / "checkpoints"
    straight = checkpoint_tensors(ckpts / "step-0000006")
    shutil.rmtree(ckpts / "step-0000006")  # as if killed after step 4's checkpoint
    train(config, resume=True, progress=False)
    assert_same(checkpoint_tensors(ckpts / "step-0000006"), straight)
    (ckpts / "step-0000004" / "adversary_optimizer.safetensors").unlink()
    shutil.rmtree(ckpts / "step-0000006")
    with pytest.raises(RunError, match="discriminator's optimizer"):
        train(config, resume=True, progress=False)
