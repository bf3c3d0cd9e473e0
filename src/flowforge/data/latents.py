"""Latent data (``data.latent``): a data set encoded once by an autoencoder into a checksummed, resumable cache.

As SD3 trains its flow on the latents of a KL autoencoder (Esser et al., 2024, arXiv:2403.03206), a run with
``data.latent: SOURCE`` trains any continuous model on the latents of SOURCE, one of

- a flowforge run of ``model.kind: autoencoder`` (its newest checkpoint, EMA weights where kept),
- a diffusers ``AutoencoderKL`` folder (``config.json`` + weights; or a pipeline folder with a ``vae/``),
- a hub id (``stabilityai/sd-vae-ft-mse``; a pipeline's ``vae`` subfolder is tried next), loaded by diffusers.

The cache lives under ``<data.cache_dir>/latents/<key>/``, keyed by the sha256 of the autoencoder's weights and
of the data (both splits and labels)::

    latents.json               the source, both fingerprints, the latent shift and scale, and per shard its rows
                               and sha256
    train-00000.safetensors    posterior means (n, C', h, w), raw (before shift and scale)
    test-00000.safetensors

A shard is written under a temporary name and renamed, then the manifest is rewritten, so a killed encoding
resumes at the first shard the manifest does not vouch for; a shard whose bytes fail their checksum is refused
(:class:`DataError`), never used. The flow sees ``(z - shift) * scale`` with ``shift`` the mean and ``1 / scale``
the standard deviation of the training latents (SD3's unit-variance convention, measured on this data rather
than taken from the autoencoder's config, which the manifest also records). The cache holds the posterior mean:
no augmentation (flips) is offered, so none is silently lost.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from flowforge.config import DataConfig, load_config
from flowforge.data.base import Dataset
from flowforge.data.downloads import cache_root, sha256_file
from flowforge.data.errors import DataError
from flowforge.nets.autoencoder import KLAutoencoder

FORMAT = 1
SHARD_ROWS = 4096  # images per shard: the unit of resuming and checksumming
ENCODE_BATCH = 256


@dataclass
class LatentDataset(Dataset):
    """A :class:`Dataset` of normalised latents ``(z - shift) * scale`` that knows its autoencoder, so that
    :meth:`to_pixels` decodes (training pictures) and :meth:`spec` tells a loaded run how to decode."""

    autoencoder: KLAutoencoder | None = None
    shift: float = 0.0
    scale: float = 1.0
    source: str = ""  # data.latent as written
    path: str | None = None  # where it was found, absolute (None: a hub id, or an autoencoder passed in)
    pixel: dict[str, Any] = field(default_factory=dict)  # the pixel data's spec (shape, value_range, levels)
    weights: str = ""  # the fingerprint of the autoencoder's weights, checked when a trained run is loaded

    def spec(self) -> dict[str, Any]:
        spec = super().spec()
        spec["latent"] = {"source": self.source, "path": self.path, "shift": self.shift, "scale": self.scale,
                          "pixel": self.pixel, "autoencoder_sha256": self.weights}
        return spec

    @torch.no_grad()
    def decode(self, u: torch.Tensor) -> torch.Tensor:
        """Images in the pixel data's value range (B, C, H, W) of normalised latents ``u`` (B, C', h, w)."""
        return decode_latents(self.autoencoder, u, self.shift, self.scale, tuple(self.pixel["value_range"]))

    def to_pixels(self, x: torch.Tensor) -> torch.Tensor:
        lo, hi = self.pixel["value_range"]  # decoded images, clamped to [0, 1] for pictures
        return ((self.decode(x) - lo) / (hi - lo)).clamp(0.0, 1.0)


def local_path(source: str) -> str | None:
    """Where ``data.latent`` is on this machine, absolute: a path that exists, relative to the **working
    directory** (as ``run.dir``, ``data.path`` and ``reflow.parent`` are, never to the config file's folder); None
    for anything else (a hub id). A run records both, so it finds its autoencoder when loaded from elsewhere."""
    path = Path(source).expanduser()
    return str(path.resolve()) if path.exists() else None


def recorded_source(latent: dict[str, Any]) -> str:
    """Where a trained run's autoencoder is: the absolute path its spec recorded while it still exists, else
    ``data.latent`` as written (a hub id, or a tree moved as a whole, relative to the working directory)."""
    path = latent.get("path")
    return path if path and Path(path).exists() else latent["source"]


def load_autoencoder(source: str) -> KLAutoencoder:
    """The autoencoder of ``data.latent``: a flowforge autoencoder run, a diffusers folder, or a hub id."""
    path = Path(source).expanduser()
    if (path / "config.json").is_file():
        return KLAutoencoder.from_pretrained(path)
    if (path / "vae" / "config.json").is_file():
        return KLAutoencoder.from_pretrained(path, subfolder="vae")
    if (path / "config.yaml").is_file():
        return _autoencoder_of_run(path)
    if path.exists() or source.startswith((".", "/", "~")):
        raise DataError(f"data.latent: {source} is neither a flowforge autoencoder run (config.yaml) nor a diffusers "
                        f"AutoencoderKL folder (config.json, or vae/config.json)")
    try:  # a hub id: the same call a user with network access makes
        try:
            return KLAutoencoder.from_pretrained(source)
        except OSError:
            return KLAutoencoder.from_pretrained(source, subfolder="vae")
    except (OSError, ValueError) as err:  # not on the hub either (or no network): say both readings
        raise DataError(f"data.latent: {source} is no folder relative to the working directory {Path.cwd()} "
                        f"(relative paths are read from there, not from the config file's folder), and loading it "
                        f"as a hub id failed ({type(err).__name__}: {str(err).splitlines()[0]}); give the "
                        f"autoencoder run's or folder's path from the working directory, or an absolute one") from None


def check_same_autoencoder(recorded: dict[str, Any], source: str, ckpt: Any = None) -> bool:
    """On resume: refuse ``source`` (``data.latent`` now) unless it is the autoencoder whose latents the run
    trained on, by the weights' sha256 its data spec ``recorded``; True when checked, False when the run
    recorded no fingerprint (not a latent run, or one from before they were recorded)."""
    want = (recorded.get("latent") or {}).get("autoencoder_sha256")
    if not want:
        return False
    got = autoencoder_fingerprint(load_autoencoder(source))
    if got != want:
        raise DataError(
            f"cannot resume: data.latent {source} is another autoencoder (weights sha256 {got[:12]}...) than the "
            f"one this run's flow was trained on ({want[:12]}..., from {recorded['latent'].get('source')}, recorded "
            f"in {ckpt or 'the checkpoint'}); its latents are other data. Point data.latent at that autoencoder "
            f"again, or start a new run.name")
    return True


def _autoencoder_of_run(run: Path) -> KLAutoencoder:
    config = load_config(run / "config.yaml")
    if config.model.kind != "autoencoder":
        raise DataError(f"data.latent: {run} is a model.kind={config.model.kind} run, not an autoencoder")
    steps = sorted(p for p in (run / "checkpoints").glob("step-*") if (p / "state.json").is_file())
    if not steps:
        raise DataError(f"data.latent: {run} has no checkpoint yet; train it first (flowforge train)")
    weights = steps[-1] / "ema.safetensors"
    weights = weights if weights.is_file() else steps[-1] / "model.safetensors"
    shape = json.loads((run / "data.json").read_text())["shape"]
    ae = config.model.autoencoder
    net = KLAutoencoder.build(shape[0], ae.latent_channels, ae.width, ae.downsampling, ae.layers_per_block,
                              ae.groups, ae.attention)
    state = {k.removeprefix("autoencoder."): v for k, v in load_file(str(weights)).items()}
    net.load_state_dict(state)
    return net


def fingerprint(tensors: dict[str, torch.Tensor], extra: str = "") -> str:
    """The sha256 of named tensors (their names, shapes, dtypes and bytes) and ``extra``."""
    h = hashlib.sha256(extra.encode())
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}{tuple(t.shape)}{t.dtype}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def autoencoder_fingerprint(ae: KLAutoencoder) -> str:
    """The sha256 of an autoencoder's weights and config: the identity a latent cache and a latent run keep."""
    # the network's config, without "_use_default_values" (a set: its order varies) and the latent's normalisation
    # (an exported vae/ carries the one measured on the data)
    config = {k: v for k, v in ae.vae.config.items()
              if not k.startswith("_") and k not in ("scaling_factor", "shift_factor")}
    return fingerprint(ae.state_dict(), json.dumps(config, sort_keys=True, default=str))


def data_fingerprint(dataset: Dataset) -> str:
    parts = {"train": dataset.train, "test": dataset.test}
    for name in ("train_labels", "test_labels"):
        if getattr(dataset, name) is not None:
            parts[name] = getattr(dataset, name)
    return fingerprint(parts, dataset.name)


class LatentCache:
    """The shards of one (autoencoder, data) pair under ``directory`` (see the module's docstring)."""

    def __init__(self, directory: Path, manifest: dict[str, Any]):
        self.directory, self.manifest = Path(directory), manifest
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / "latents.json"
        if path.is_file():
            old = json.loads(path.read_text())
            if {k: old.get(k) for k in ("format", "autoencoder", "data")} != \
                    {k: manifest.get(k) for k in ("format", "autoencoder", "data")}:
                raise DataError(f"{path} belongs to another autoencoder or data set; remove {self.directory}")
            self.manifest = {**manifest, **old}
        self.manifest.setdefault("shards", {})

    def _save_manifest(self) -> None:
        tmp = self.directory / "latents.json.tmp"
        tmp.write_text(json.dumps(self.manifest, indent=1))
        os.replace(tmp, self.directory / "latents.json")

    def shard(self, name: str) -> torch.Tensor | None:
        """A finished shard's latents, None where the manifest vouches for none; a shard failing its sha256 is
        refused."""
        entry, path = self.manifest["shards"].get(name), self.directory / f"{name}.safetensors"
        if entry is None or not path.is_file():
            return None
        if sha256_file(path) != entry["sha256"]:
            raise DataError(f"latent cache shard {path} fails its sha256 check ({entry['sha256'][:12]}...): it was "
                            f"damaged or changed; delete it (or {self.directory}) to encode it again")
        return load_file(str(path))["latents"]

    def write(self, name: str, latents: torch.Tensor) -> None:
        path = self.directory / f"{name}.safetensors"
        tmp = path.with_suffix(".tmp")
        save_file({"latents": latents.contiguous()}, str(tmp))
        os.replace(tmp, path)
        self.manifest["shards"][name] = {"rows": len(latents), "sha256": sha256_file(path)}
        self._save_manifest()

    def set_stats(self, shift: float, scale: float) -> None:
        self.manifest.update(shift=shift, scale=scale)
        self._save_manifest()


@torch.no_grad()
def encode_split(ae: KLAutoencoder, cache: LatentCache, split: str, x: torch.Tensor,
                 shard_rows: int = SHARD_ROWS) -> torch.Tensor:
    """The raw latents (posterior means) of images ``x`` (N, C, H, W), from the cache where it has them."""
    parts = []
    for i, start in enumerate(range(0, len(x), shard_rows)):
        name = f"{split}-{i:05d}"
        latents = cache.shard(name)
        if latents is None:
            rows = x[start:start + shard_rows]
            latents = torch.cat([ae.encode(b)[0].float() for b in rows.split(ENCODE_BATCH)])
            cache.write(name, latents)
        parts.append(latents)
    return torch.cat(parts)


def encode_dataset(dataset: Dataset, source: str, cache_dir: str | None = None,
                   shard_rows: int = SHARD_ROWS, autoencoder: KLAutoencoder | None = None) -> LatentDataset:
    """``dataset`` as normalised latents of the autoencoder of ``source`` (encoded once, then read back)."""
    if dataset.kind != "image" or dataset.value_range is None:
        raise DataError(f"data.latent encodes images; data set {dataset.name!r} holds {dataset.kind}")
    ae = (autoencoder or load_autoencoder(source)).eval()
    for p in ae.parameters():
        p.requires_grad_(False)
    ae.latent_shape(dataset.shape)  # refuses sizes the downsampling does not divide
    weights = autoencoder_fingerprint(ae)
    data = data_fingerprint(dataset)
    key = hashlib.sha256(f"{FORMAT}{weights}{data}{shard_rows}".encode()).hexdigest()[:20]
    cache = LatentCache(cache_root(cache_dir) / "latents" / key,
                        {"format": FORMAT, "autoencoder": weights, "data": data, "source": str(source),
                         "config_scale": ae.scale, "config_shift": ae.shift})
    train = encode_split(ae, cache, "train", to_ae_range(dataset.train, dataset.value_range), shard_rows)
    test = encode_split(ae, cache, "test", to_ae_range(dataset.test, dataset.value_range), shard_rows)
    if "scale" not in cache.manifest:
        cache.set_stats(float(train.mean()), float(1.0 / train.std()))
    shift, scale = cache.manifest["shift"], cache.manifest["scale"]
    pixel = {"shape": list(dataset.shape), "value_range": list(dataset.value_range), "levels": dataset.levels,
             "cache": str(cache.directory)}
    return LatentDataset(
        name=dataset.name, kind="image", train=(train - shift) * scale, test=(test - shift) * scale,
        train_labels=dataset.train_labels, test_labels=dataset.test_labels, autoencoder=ae, shift=shift,
        scale=scale, source=str(source), path=local_path(str(source)),
        weights=weights, pixel=pixel)


def to_ae_range(x: torch.Tensor, value_range: tuple[float, float]) -> torch.Tensor:
    """Images in the autoencoder's [-1, 1] (diffusers' convention) from ``value_range``."""
    lo, hi = value_range
    return (x - lo) / (hi - lo) * 2.0 - 1.0


@torch.no_grad()
def decode_latents(ae: KLAutoencoder, u: torch.Tensor, shift: float, scale: float,
                   value_range: tuple[float, float]) -> torch.Tensor:
    """Images (B, C, H, W) in ``value_range`` of latents ``u`` (B, C', h, w) normalised as ``(z - shift) * scale``."""
    device = next(ae.parameters()).device
    y = ae.decode(u.to(device).float() / scale + shift)  # (B, C, H, W) in [-1, 1]
    lo, hi = value_range
    return ((y + 1.0) / 2.0 * (hi - lo) + lo).to(u.device)


@torch.no_grad()
def encode_images(ae: KLAutoencoder, x: torch.Tensor, shift: float, scale: float,
                  value_range: tuple[float, float]) -> torch.Tensor:
    """Normalised latents ``(z - shift) * scale`` (B, C', h, w) of images ``x`` in ``value_range`` (posterior
    means)."""
    device = next(ae.parameters()).device
    z = ae.encode(to_ae_range(x, value_range).to(device).float())[0]
    return ((z - shift) * scale).to(x.device)


def pixel_data(cfg: DataConfig) -> DataConfig:
    """The data settings of the images themselves (``data.latent`` unset)."""
    return dataclasses.replace(cfg, latent=None)


def with_latents(dataset: Dataset, cfg: DataConfig) -> Dataset:
    """``dataset`` itself, or its latents when ``data.latent`` is set."""
    return encode_dataset(dataset, cfg.latent, cfg.cache_dir) if cfg.latent else dataset


__all__ = ["LatentCache", "LatentDataset", "autoencoder_fingerprint", "check_same_autoencoder", "data_fingerprint",
           "decode_latents", "encode_dataset", "encode_images", "encode_split", "fingerprint", "load_autoencoder",
           "local_path", "pixel_data", "recorded_source", "with_latents"]
