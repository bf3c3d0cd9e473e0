"""Latent data (data.latent): the checksummed, resumable latent cache, its scale, and latent models (sampling
decodes, pixel bits/dim refused, inpainting keeps the kept pixels exactly)."""

from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("diffusers")

from flowforge.config import load_config  # noqa: E402
from flowforge.data import Dataset  # noqa: E402
from flowforge.data.errors import DataError  # noqa: E402
from flowforge.data.latents import LatentDataset, encode_dataset  # noqa: E402
from flowforge.errors import UserError  # noqa: E402
from flowforge.models import build_model  # noqa: E402
from flowforge.models.latent import LatentFlow, wrap_latent  # noqa: E402
from flowforge.nets.autoencoder import KLAutoencoder  # noqa: E402
from flowforge.runs import load_run  # noqa: E402
from flowforge.train import train  # noqa: E402


def images(n: int, seed: int) -> torch.Tensor:
    return torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.fixture
def pixels() -> Dataset:
    return Dataset(name="toy-images", kind="image", train=images(40, 0), test=images(12, 1), levels=None,
                   value_range=(-1.0, 1.0), train_labels=torch.arange(40) % 10, test_labels=torch.arange(12) % 10)


@pytest.fixture
def folder(tmp_path):
    """A small AutoencoderKL saved as a diffusers folder, as one made elsewhere would be."""
    torch.manual_seed(0)
    ae = KLAutoencoder.build(1, latent_channels=3, width=8, downsampling=2, groups=4)
    ae.save_pretrained(tmp_path / "vae")
    return str(tmp_path / "vae")


def test_encode_shapes_and_the_stored_scale(pixels, folder, tmp_path):
    data = encode_dataset(pixels, folder, str(tmp_path / "cache"), shard_rows=16)
    assert isinstance(data, LatentDataset)
    assert data.train.shape == (40, 3, 4, 4) and data.test.shape == (12, 3, 4, 4)
    assert torch.equal(data.train_labels, pixels.train_labels)
    assert float(data.train.mean()) == pytest.approx(0.0, abs=1e-5)  # unit variance, zero mean: SD3's convention
    assert float(data.train.std()) == pytest.approx(1.0, abs=1e-4)
    manifest = json.loads(next((tmp_path / "cache" / "latents").glob("*/latents.json")).read_text())
    assert (manifest["shift"], manifest["scale"]) == (data.shift, data.scale)
    assert len(manifest["shards"]) == 3 + 1  # 40 train rows in shards of 16, 12 test rows
    assert data.decode(data.test[:2]).shape == (2, 1, 8, 8)
    assert data.spec()["latent"]["pixel"]["shape"] == [1, 8, 8]


def test_the_cache_resumes_after_a_kill(pixels, folder, tmp_path, monkeypatch):
    calls = []
    real = KLAutoencoder.encode

    def dying(self, x):
        calls.append(len(x))
        if len(calls) == 2:
            raise KeyboardInterrupt  # killed while encoding the second shard
        return real(self, x)

    monkeypatch.setattr(KLAutoencoder, "encode", dying)
    with pytest.raises(KeyboardInterrupt):
        encode_dataset(pixels, folder, str(tmp_path / "cache"), shard_rows=16)
    calls.clear()
    monkeypatch.setattr(KLAutoencoder, "encode", lambda self, x: (calls.append(len(x)), real(self, x))[1])
    resumed = encode_dataset(pixels, folder, str(tmp_path / "cache"), shard_rows=16)
    assert calls == [16, 8, 12]  # the first shard is read back, not encoded again
    monkeypatch.setattr(KLAutoencoder, "encode", real)
    whole = encode_dataset(pixels, folder, str(tmp_path / "fresh"), shard_rows=16)
    assert torch.allclose(resumed.train, whole.train, atol=1e-6)


def test_a_shard_failing_its_checksum_is_refused(pixels, folder, tmp_path):
    encode_dataset(pixels, folder, str(tmp_path / "cache"), shard_rows=16)
    shard = next((tmp_path / "cache" / "latents").glob("*/train-00001.safetensors"))
    raw = bytearray(shard.read_bytes())
    raw[-1] ^= 0xFF
    shard.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="sha256"):
        encode_dataset(pixels, folder, str(tmp_path / "cache"), shard_rows=16)


def latent_model(data: LatentDataset) -> LatentFlow:
    cfg = load_config(None, ["model.net.name=dit", "model.net.size=tiny", "model.net.patch=1",
                             "model.num_classes=10"]).model
    spec = data.spec()
    flow = build_model(cfg, spec)
    spec["latent"]["source"] = str(data.source)
    return wrap_latent(flow, spec)


def test_a_latent_model_refuses_pixel_bits_per_dim(pixels, folder, tmp_path):
    model = latent_model(encode_dataset(pixels, folder, str(tmp_path / "cache")))
    assert isinstance(model, LatentFlow) and model.shape == (1, 8, 8) and model.latent_shape == (3, 4, 4)
    with pytest.raises(UserError, match="latent") as err:
        model.bits_per_dim(pixels.test[:2])
    assert "pixel" in str(err.value) and "48 dimensions" in str(err.value)
    with pytest.raises(UserError, match="refused"):
        model.log_prob_to_bits_per_dim(torch.zeros(2))
    bits = model.latent_bits_per_dim(pixels.test[:2], method="euler", steps=2)
    assert bits.shape == (2,) and torch.isfinite(bits).all()


def test_latent_inpainting_keeps_the_kept_pixels_exactly(pixels, folder, tmp_path):
    model = latent_model(encode_dataset(pixels, folder, str(tmp_path / "cache")))
    x = pixels.test[:3]
    mask = torch.ones_like(x, dtype=torch.bool)
    mask[..., 3:, :] = False  # fill the lower five rows
    cells = model.latent_mask(mask)
    assert cells.shape == (3, 3, 4, 4)
    assert cells[..., :1, :].all() and not cells[..., 1:, :].any()  # row 3 straddles latent row 1: regenerated
    out = model.inpaint(x, mask, sampler="euler", steps=2, labels=torch.arange(3),
                        generator=torch.Generator().manual_seed(5))
    assert torch.equal(out[mask], x[mask])
    assert not torch.equal(out[~mask], x[~mask])
    # the fill before the replacement (what benchmarks.latent_inpainting measures the seam of): the same draw, and
    # on the kept pixels it is the decoder's, not x
    decoded = model.decoded_fill(x, mask, sampler="euler", steps=2, labels=torch.arange(3),
                                 generator=torch.Generator().manual_seed(5))
    assert torch.equal(out, torch.where(mask, x, decoded))
    assert not torch.equal(decoded[mask], x[mask])


def test_a_latent_run_trains_and_samples_images(folder, tmp_path):
    overrides = [f"run.dir={tmp_path / 'run'}", "data.name=digits", "data.image_range=symmetric",
                 f"data.latent={folder}", f"data.cache_dir={tmp_path / 'cache'}", "model.net.name=dit",
                 "model.net.size=tiny", "model.net.patch=1", "model.num_classes=10", "train.steps=2",
                 "train.batch_size=16", "train.warmup_steps=1", "train.sample_every=0", "train.ckpt_every=2",
                 "train.tensorboard=false", "sample.steps=2"]
    train(load_config(None, overrides), progress=False)
    run = load_run(tmp_path / "run")
    assert isinstance(run.model, LatentFlow)
    samples = run.model.sample(4, **run.sample_options(4))
    assert samples.shape == (4, 1, 8, 8)
    from flowforge.jobs import export_run, from_pretrained

    out = export_run(tmp_path / "run", tmp_path / "export")
    assert (out / "vae" / "config.json").is_file()  # the autoencoder bundled as diffusers pipelines keep it
    back = from_pretrained(out)
    assert isinstance(back, LatentFlow) and back.scale == run.model.scale
    options = run.sample_options(4, torch.Generator().manual_seed(0))
    again = run.sample_options(4, torch.Generator().manual_seed(0))
    assert torch.allclose(back.sample(4, **options), run.model.sample(4, **again), atol=1e-5)


@pytest.mark.parametrize("net", [
    ["model.net.name=unet", "model.net.channel_mult=[1]", "model.net.attention_levels=[0]"],
    ["model.net.name=mmdit", "model.net.patch=1", "model.text.captions=class-names"],
    ["model.net.name=dit", "model.net.patch=1"]])
def test_every_image_backbone_trains_on_latents(net):
    """The U-Net, DiT and MMDiT (with captions) on a 4 x 7 x 7 latent grid, as configs/ae-fashion.yaml makes."""
    spec = {"name": "fashion-mnist", "kind": "image", "shape": [4, 7, 7], "value_range": None, "levels": None}
    flow = build_model(load_config(None, [*net, "model.num_classes=10"]).model, spec)
    loss = flow.loss(torch.randn(4, 4, 7, 7), labels=torch.arange(4))
    loss.backward()
    assert torch.isfinite(loss)


def latent_run_overrides(run_dir, latent: str, cache, steps: int) -> list[str]:
    return [f"run.dir={run_dir}", "data.name=digits", "data.image_range=symmetric", f"data.latent={latent}",
            f"data.cache_dir={cache}", "model.net.name=dit", "model.net.size=tiny", "model.net.patch=1",
            f"train.steps={steps}", "train.batch_size=16", "train.warmup_steps=1", "train.sample_every=0",
            "train.ckpt_every=2", "train.tensorboard=false", "sample.steps=2", "train.schedule=constant"]


def test_resume_refuses_another_autoencoder_and_relative_paths_are_the_working_directorys(tmp_path, monkeypatch):
    import shutil

    from flowforge.errors import RunError

    for name, seed in (("vae-a", 0), ("vae-b", 1)):
        torch.manual_seed(seed)
        KLAutoencoder.build(1, latent_channels=3, width=8, downsampling=2, groups=4).save_pretrained(tmp_path / name)
    monkeypatch.chdir(tmp_path)  # data.latent is read relative to the working directory, as run.dir is
    run, cache = tmp_path / "run", tmp_path / "cache"
    train(load_config(None, latent_run_overrides(run, "vae-a", cache, 2)), progress=False)
    recorded = json.loads((run / "data.json").read_text())["latent"]
    assert recorded["source"] == "vae-a" and recorded["path"] == str((tmp_path / "vae-a").resolve())
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # loaded from another directory: the recorded absolute path
    assert isinstance(load_run(run).model, LatentFlow)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match=r"cannot resume: data.latent vae-b is another autoencoder .*from vae-a"):
        train(load_config(None, latent_run_overrides(run, "vae-b", cache, 4)), resume=True, progress=False)
    shutil.copytree(tmp_path / "vae-a", tmp_path / "moved-a")
    shutil.rmtree(tmp_path / "vae-a")
    shutil.copytree(tmp_path / "vae-b", tmp_path / "vae-a")  # retrained in place: the same data.latent string
    with pytest.raises(DataError, match="cannot resume: data.latent vae-a is another autoencoder"):
        train(load_config(None, latent_run_overrides(run, "vae-a", cache, 4)), resume=True, progress=False)
    with pytest.raises(UserError, match="weights changed since"):  # nor does a trained run load with it
        load_run(run)
    # the same autoencoder moved: accepted, and the run goes on
    assert train(load_config(None, latent_run_overrides(run, "moved-a", cache, 4)), resume=True,
                 progress=False).step == 4
    # a pixel run cannot be resumed on latents, nor the other way round
    with pytest.raises(RunError, match="data.latent was 'moved-a' and is now None"):
        overrides = [o for o in latent_run_overrides(run, "x", cache, 6) if not o.startswith("data.latent")]
        train(load_config(None, overrides), resume=True, progress=False)


def test_a_source_neither_here_nor_on_the_hub_names_the_working_directory(tmp_path, monkeypatch):
    from flowforge.data.latents import load_autoencoder

    def offline(*args, **kwargs):
        raise OSError("We couldn't connect to 'https://huggingface.co'")

    monkeypatch.setattr(KLAutoencoder, "from_pretrained", offline)  # no network here: the hub's answer, offline
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match=rf"runs/ae is no folder relative to the working directory {tmp_path}"):
        load_autoencoder("runs/ae")


def test_the_seam_of_benchmarks_latent_inpainting_counts_kept_filled_neighbours_only():
    from benchmarks.latent_inpainting import seam_step

    images = torch.zeros(1, 1, 2, 3)
    images[..., 2] = 1.0  # a step of 1 between the second and the third column
    known = torch.zeros(1, 1, 2, 3, dtype=torch.bool)
    known[..., :2] = True  # the third column filled: its two horizontal neighbour pairs straddle the border
    assert seam_step(images, known) == 1.0
    known[..., 1] = False  # the border moves left, where the image is flat
    assert seam_step(images, known) == 0.0
    known[0, 0, 0, 0] = False  # now one vertical pair (0, 1 below it) and one horizontal pair cross, both flat
    assert seam_step(images, known) == 0.0
