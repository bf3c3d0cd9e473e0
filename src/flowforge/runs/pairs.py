"""Reflow's coupling: a trained model's (noise, sample) pairs, drawn once, stored in checksummed shards.

Liu, Gong & Liu (2023), "Flow Straight and Fast", arXiv:2209.03003: integrating a rectified flow's ODE from
noise ``z`` gives a sample ``x = ODE(z)``; a flow trained on the pairs ``(x, z)`` instead of independent draws
(the *(k+1)-rectified flow*) has straighter paths, and a network regressed on them generates in one step.

The pairs of one parent and one set of settings live under ``PARENT/pairs/<key>/``::

    pairs.json               the settings, and for each finished shard its file, size and sha256
    shard-00000.safetensors  noise (n, *shape), x (n, *shape) in model space, labels (n,) if conditional

The key leaves out the pair count: shard ``i`` is the same draw (its own seed, its labels' offset) for every count
that reaches it, so asking for more pairs later draws only the shards not drawn yet (and the last one again if its
size changes), and asking for fewer uses the first shards (drawing the last again where the count cuts one).

Shards are written under a temporary name and renamed; ``pairs.json`` is rewritten after each one. A run that
is killed resumes at the first missing shard; a shard whose bytes do not match its checksum (or that no manifest
entry vouches for) is drawn again, never used.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from ..errors import RunError
from ..solvers import SOLVERS
from .checkpoint import atomic_write_text, remove_dead_leftovers
from .load import Run

FORMAT = 2  # 2: the directory and the manifest are keyed on the settings without the pair count


@dataclass(frozen=True)
class PairSettings:
    """How the pairs are drawn: everything that changes them (with the parent's weights)."""

    pairs: int
    shard_size: int = 2000
    sampler: str = "dopri5"
    steps: int = 100
    rtol: float = 1e-5
    atol: float = 1e-5
    guidance: float = 1.0
    seed: int = 0


@dataclass
class Pairs:
    """Loaded pairs: ``noise`` and ``x`` (N, *shape) in model space, ``labels`` (N,) or None."""

    noise: Tensor
    x: Tensor
    labels: Tensor | None
    directory: Path
    weights: str = ""  # the sha256 of the parent weights they were drawn from (weights_sha256)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def weights_sha256(run: Run) -> str:
    """The sha256 of the weights file ``run``'s model was loaded from: the identity of the parent of pairs."""
    return sha256_file(run.checkpoint / ("ema.safetensors" if run.weights == "ema" else "model.safetensors"))


def _draw_settings(settings: PairSettings) -> dict[str, Any]:
    """The settings that decide what each shard holds: all but the pair count, which only decides how many
    shards there are and the size of the last."""
    return {k: v for k, v in asdict(settings).items() if k != "pairs"}


def pairs_dir(run: Run, settings: PairSettings, weights: str | None = None) -> Path:
    """Where ``run``'s pairs for ``settings`` live: keyed by :func:`_draw_settings` and the weights they integrate
    (``weights``: their :func:`weights_sha256`, computed here if not given)."""
    key = json.dumps({"settings": _draw_settings(settings), "weights": weights or weights_sha256(run),
                      "format": FORMAT}, sort_keys=True)
    return run.dir / "pairs" / hashlib.sha256(key.encode()).hexdigest()[:16]


def _shard_seed(seed: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, 0x5EF10, index]).generate_state(2, np.uint64)[0] >> np.uint64(1))


def shard_sizes(settings: PairSettings) -> list[int]:
    full, rest = divmod(settings.pairs, settings.shard_size)
    return [settings.shard_size] * full + ([rest] if rest else [])


def draw_shard(run: Run, settings: PairSettings, index: int, n: int) -> dict[str, Tensor]:
    """Shard ``index``: ``n`` noise draws from its own seed and the parent's ODE end points of them (the
    dequantized end points for discrete data: the child trains on the continuous coupling). A class-conditional
    parent gets labels cycling through its classes from the shard's offset."""
    model = run.model
    device = next(model.parameters()).device  # where the parent runs (a GPU in a GPU run's reflow)
    solver = SOLVERS[settings.sampler]
    # the sampler's own options (its constructor's arguments, as SampleConfig.options() reads them) that the
    # settings hold: dopri5's rtol and atol
    options: dict[str, Any] = {name: getattr(settings, name.lower()) for name in solver.option_names()
                               if hasattr(settings, name.lower())}
    labels = None
    if run.config.model.num_classes is not None:
        offset = index * settings.shard_size
        labels = (torch.arange(n) + offset) % run.config.model.num_classes
        options.update(labels=labels.to(device), guidance=settings.guidance)
    elif settings.guidance != 1.0:
        raise RunError(f"reflow.guidance={settings.guidance} needs a class-conditional parent; {run.dir} has no "
                       f"classes")
    # the noise at the grid's first time, as sample() draws it for this sampler, kept with its end point
    times = model.time_grid(settings.steps, finite_start=solver.finite_start)
    generator = torch.Generator().manual_seed(_shard_seed(settings.seed, index))
    noise = model.path.prior_sample((n, *model.shape), float(times[0]), generator=generator)
    # the noise is drawn on the CPU from the shard's seed, so a shard holds the same pairs on every device
    x = model.sample(n, sampler=settings.sampler, steps=settings.steps, noise=noise.to(device), dequantized=True,
                     **options)
    out = {"noise": noise.float().cpu().contiguous(), "x": x.float().cpu().contiguous()}  # stored from the host
    if labels is not None:
        out["labels"] = labels.long().contiguous()
    if not torch.isfinite(out["x"]).all():
        raise RunError(f"the parent {run.dir} gave non-finite samples in pairs shard {index}; check the parent "
                       f"(flowforge eval {run.dir}) or use an accurate sampler (reflow.sampler=dopri5)")
    return out


def _manifest_shape_ok(manifest: Any) -> bool:
    """Whether ``manifest`` has the layout :func:`make_pairs` writes (valid JSON of another shape would fail
    later with a traceback)."""
    if not isinstance(manifest, dict) or not isinstance(manifest.get("shards"), dict):
        return False
    return all(isinstance(e, dict) and isinstance(e.get("n"), int) and isinstance(e.get("sha256"), str)
               for e in manifest["shards"].values())


def pair_bytes(shape: tuple[int, ...], n: int, labels: bool) -> int:
    """Bytes of ``n`` pairs as stored and loaded: noise and end point in float32, labels in int64."""
    return n * (2 * 4 * math.prod(shape) + (8 if labels else 0))


def check_pairs_fit(run: Run, settings: PairSettings, directory: Path, todo: int) -> None:
    """Refuse a pair count whose shards would not fit on the disk, or whose tensors (training loads them all)
    would not fit in half this machine's memory, before the first shard is drawn."""
    labels = run.config.model.num_classes is not None
    shape = tuple(run.model.shape)
    total = pair_bytes(shape, settings.pairs, labels)
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if total > memory // 2:
        raise RunError(f"reflow.pairs={settings.pairs:,}: the pairs take {total / 2**30:,.1f} GiB, more than half "
                       f"of this machine's {memory / 2**30:.0f} GiB of memory, where training holds them all; "
                       f"ask for fewer pairs (--pairs)")
    need, free = pair_bytes(shape, todo, labels), shutil.disk_usage(directory).free
    if need > free:
        raise RunError(f"reflow.pairs={settings.pairs:,}: the shards still to draw take {need / 2**30:,.1f} GiB, "
                       f"and {directory} has {free / 2**30:,.1f} GiB free; free some space or ask for fewer pairs")


def _read_manifest(directory: Path, settings: PairSettings, weights: str) -> dict[str, Any]:
    path = directory / "pairs.json"
    fresh = {"format": FORMAT, "settings": _draw_settings(settings), "weights": weights, "shards": {}}
    if not path.is_file():
        return fresh
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        warnings.warn(f"{path} is unreadable; every shard in {directory} is checked against a new manifest, "
                      f"i.e. drawn again", stacklevel=3)
        return fresh
    if not _manifest_shape_ok(manifest):
        raise RunError(f"{path} is valid JSON but not a pairs manifest (an object with format, settings, weights "
                       f"and a shards object of {{file, n, sha256}}); delete {path} (its shards are then checked "
                       f"and drawn again)")
    if manifest.get("settings") != _draw_settings(settings) or manifest.get("format") != FORMAT:
        return fresh
    if manifest.get("weights") != weights:
        raise RunError(f"{directory} holds pairs drawn from other weights (sha256 {manifest.get('weights')}) than "
                       f"the parent's ({weights}); pairs of another parent are never used: delete {directory} or "
                       f"point reflow.parent at the run that drew them")
    return manifest


def make_pairs(run: Run, settings: PairSettings, progress: bool = False, weights: str | None = None) -> Path:
    """Draw (or finish drawing) the pairs of ``run`` for ``settings``; return their directory. ``weights``: the
    parent's :func:`weights_sha256` when the caller has it (computed here otherwise).

    Idempotent and resumable: shards that exist and match their recorded sha256 are kept, the others drawn.
    """
    if not run.model.takes_sampler or not hasattr(run.model, "path"):
        raise RunError(f"reflow needs a continuous model (flow matching / diffusion); {run.dir} is a "
                       f"{run.config.model.kind} flow")
    weights = weights or weights_sha256(run)
    directory = pairs_dir(run, settings, weights)
    directory.mkdir(parents=True, exist_ok=True)
    remove_dead_leftovers(directory, ".shard-*.tmp-*")  # shards half-written by a killed draw
    manifest = _read_manifest(directory, settings, weights)
    sizes = shard_sizes(settings)
    done = {int(k): e["n"] for k, e in manifest["shards"].items() if k.isdigit()}
    check_pairs_fit(run, settings, directory, sum(n for i, n in enumerate(sizes) if done.get(i) != n))
    for index, n in enumerate(sizes):
        name = f"shard-{index:05d}.safetensors"
        path = directory / name
        entry = manifest["shards"].get(str(index))
        if path.is_file() and entry is not None and entry["n"] == n and sha256_file(path) == entry["sha256"]:
            continue
        if path.is_file() and (entry is None or entry["n"] == n):  # another size: the last shard of another count
            warnings.warn(f"pairs shard {path} does not match its checksum (or has none): drawing it again",
                          stacklevel=2)
        if progress:
            print(f"pairs: drawing shard {index + 1}/{len(sizes)} ({n} pairs, {settings.sampler})", flush=True)
        tensors = draw_shard(run, settings, index, n)
        tmp = path.with_name(f".{name}.tmp-{os.getpid()}")
        save_file(tensors, str(tmp))
        os.replace(tmp, path)
        manifest["shards"][str(index)] = {"file": name, "n": n, "sha256": sha256_file(path)}
        atomic_write_text(directory / "pairs.json", json.dumps(manifest, indent=1))
    return directory


def load_pairs(directory: Path, settings: PairSettings, weights: str) -> Pairs:
    """Every shard of ``directory``, each checked against its recorded sha256 (a mismatch is an error: call
    :func:`make_pairs` first, which draws bad shards again), drawn from the parent whose weights have sha256
    ``weights`` (:func:`weights_sha256`; pairs of another parent are refused)."""
    manifest = _read_manifest(directory, settings, weights)
    parts: dict[str, list[Tensor]] = {"noise": [], "x": [], "labels": []}
    for index, n in enumerate(shard_sizes(settings)):
        entry = manifest["shards"].get(str(index))
        path = directory / f"shard-{index:05d}.safetensors"
        if entry is None or not path.is_file() or entry["n"] != n or sha256_file(path) != entry["sha256"]:
            raise RunError(f"pairs shard {path} is missing or does not match its checksum; run the reflow again "
                           f"(it draws only the missing shards)")
        tensors = load_file(str(path))
        for key in parts:
            if key in tensors:
                parts[key].append(tensors[key])
    labels = torch.cat(parts["labels"]) if parts["labels"] else None
    return Pairs(noise=torch.cat(parts["noise"]), x=torch.cat(parts["x"]), labels=labels, directory=directory,
                 weights=weights)


__all__ = ["PairSettings", "Pairs", "draw_shard", "weights_sha256", "load_pairs", "make_pairs", "pairs_dir",
           "sha256_file", "reflow_pairs_of", "shard_sizes"]


def reflow_pairs_of(run: Run, settings: PairSettings, progress: bool = False, recorded: str | None = None) -> Pairs:
    """``run``'s pairs for ``settings``: drawn where missing (:func:`make_pairs`), then loaded and checked
    (:func:`load_pairs`), the parent's weights hashed once.

    ``recorded``: the parent weights a resumed child trained on so far. If the parent has trained further since,
    the child goes on with the pairs of those recorded weights (never new pairs from other weights), and is
    refused when those pairs are no longer complete.
    """
    weights = weights_sha256(run)
    if recorded is None or recorded == weights:
        return load_pairs(make_pairs(run, settings, progress, weights), settings, weights)
    directory = pairs_dir(run, settings, recorded)
    try:
        pairs = load_pairs(directory, settings, recorded)
    except RunError:
        raise RunError(f"the reflow parent {run.dir} has trained further since this run drew its pairs (its weights "
                       f"had sha256 {recorded[:12]}..., now {weights[:12]}...), and the pairs of the recorded weights "
                       f"({directory}) are incomplete; this run cannot go on as it began: train a new reflow run "
                       f"from the parent as it is now") from None
    warnings.warn(f"the reflow parent {run.dir} has trained further since this run began; resuming on the pairs "
                  f"drawn from its recorded weights (sha256 {recorded[:12]}..., in {directory}), not its new ones",
                  stacklevel=2)
    return pairs
