"""The autoencoder (model.kind autoencoder): diffusers' AutoencoderKL format, its objective, training by the engine
and the save_pretrained / from_pretrained round trip."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("diffusers")

from flowforge.config import ConfigError, load_config  # noqa: E402
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
