"""Checkpoints: safetensors for tensors, JSON for the rest; atomic, pruned, never pickled.

Layout of one checkpoint (a directory, made complete under a temporary name and
then renamed, so a crash mid-write never leaves a half checkpoint)::

    checkpoints/step-000100/
        model.safetensors       trained weights
        ema.safetensors         EMA weights (when EMA is on)
        optimizer.safetensors   optimizer moments; param groups in its metadata
        state.json              step, data shape, RNG states, EMA count, the model section it was trained as

A checkpoint is bound to the model it was trained as: ``state.json`` keeps the
config's ``model`` section, and loading refuses a ``config.yaml`` whose model
section has changed since (a shape-preserving edit such as ``model.target``
would otherwise load silently and sample garbage).
"""

from __future__ import annotations

import base64
import json
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_model, save_file, save_model
from torch import nn

from ..config import upgrade_model_section
from ..errors import RunError

_NAME = re.compile(r"^step-(\d+)$")


def checkpoint_dirs(run_dir: Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _NAME.match(p.name)) and (p / "state.json").is_file()]
    return [p for _, p in sorted(found)]


def latest_checkpoint(run_dir: Path) -> Path | None:
    dirs = checkpoint_dirs(run_dir)
    return dirs[-1] if dirs else None


# --------------------------------------------------------------------------- RNG states as JSON


def rng_state() -> dict[str, Any]:
    """This process's global RNG states (torch CPU, NumPy, Python) in JSON-safe form."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    out = {
        "torch": base64.b64encode(torch.get_rng_state().numpy().tobytes()).decode(),
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
        "python": [py_state[0], list(py_state[1]), py_state[2]],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # each GPU's generator, for an exact resume
        out["cuda"] = [base64.b64encode(s.numpy().tobytes()).decode() for s in torch.cuda.get_rng_state_all()]
    return out


def set_rng_state(state: dict[str, Any], ckpt: Path | None = None) -> None:
    """Restore what :func:`rng_state` saved; a damaged state names the checkpoint to delete."""
    try:
        torch.set_rng_state(torch.frombuffer(bytearray(base64.b64decode(state["torch"])), dtype=torch.uint8))
        kind, keys, *rest = state["numpy"]
        np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), *rest))
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
        cuda = state.get("cuda")  # written on GPUs; a CPU, or another number of GPUs, goes on without them
        if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([torch.frombuffer(bytearray(base64.b64decode(c)), dtype=torch.uint8)
                                          for c in cuda])
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise RunError(f"checkpoint {ckpt}: its saved random state is damaged ({type(err).__name__}: {err}); "
                       f"{_FALL_BACK}") from None


# --------------------------------------------------------------------------- optimizer state as safetensors


def _save_optimizer(optimizer: torch.optim.Optimizer, path: Path) -> None:
    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for pid, state in sd["state"].items():
        for name, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{pid}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{pid}.{name}"] = value
    meta = {"param_groups": json.dumps(sd["param_groups"]), "scalars": json.dumps(scalars)}
    save_file(tensors, str(path), metadata=meta)


def read_optimizer_state(path: Path) -> dict[str, Any]:
    """The optimizer state dict that :func:`_save_optimizer` wrote (``state`` keyed by parameter index)."""
    state: dict[int, dict[str, Any]] = {}
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        for key in f.keys():
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = f.get_tensor(key)
    for key, value in json.loads(meta["scalars"]).items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = value
    groups = json.loads(meta["param_groups"])
    for g in groups:  # JSON turned tuples into lists
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
    return {"state": state, "param_groups": groups}


def _load_optimizer(optimizer: torch.optim.Optimizer, path: Path) -> None:
    optimizer.load_state_dict(read_optimizer_state(path))


# --------------------------------------------------------------------------- save / load


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=1))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_text(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so that a reader sees the old or the new file, never a part."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def remove_dead_leftovers(root: Path, pattern: str = ".tmp-step-*") -> None:
    """Temporary files or directories (``pattern``, named ``...-PID``) of processes that died mid-write, such as
    a checkpoint or a pairs shard; another live process's are left alone."""
    for leftover in root.glob(pattern):
        pid = leftover.name.rsplit("-", 1)[-1]
        if pid.isdigit() and (int(pid) == os.getpid() or not _pid_alive(int(pid))):
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)


def save_checkpoint(run_dir: Path, step: int, *, model: nn.Module, optimizer: torch.optim.Optimizer,
                    ema: nn.Module | None, state: dict[str, Any], keep_last: int,
                    keep: Path | None = None,
                    adversary: tuple[nn.Module, torch.optim.Optimizer] | None = None) -> Path:
    """Write checkpoint ``step`` atomically and delete all but the newest ``keep_last`` and ``keep`` (the newest
    healthy one, which a diverged run goes on from: :mod:`flowforge.train.health`). ``adversary``: a second
    network trained beside the model with its own optimiser (an autoencoder's patch discriminator), written as
    ``adversary.safetensors`` and ``adversary_optimizer.safetensors``."""
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:07d}"
    remove_dead_leftovers(root)
    tmp = root / f".tmp-step-{step:07d}-{os.getpid()}"
    tmp.mkdir()
    save_model(model, str(tmp / "model.safetensors"))
    if ema is not None:
        save_model(ema, str(tmp / "ema.safetensors"))
    _save_optimizer(optimizer, tmp / "optimizer.safetensors")
    if adversary is not None:
        save_model(adversary[0], str(tmp / "adversary.safetensors"))
        _save_optimizer(adversary[1], tmp / "adversary_optimizer.safetensors")
    _write_json(tmp / "state.json", {**state, "step": step})  # state.json last: it marks the checkpoint complete
    for f in tmp.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    if final.exists():  # the same step saved again (e.g. resumed at the last step): swap, then drop the old one
        old = root / f".old-step-{step:07d}-{os.getpid()}"
        os.rename(final, old)
        os.rename(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, final)
    _fsync_dir(root)  # the rename is durable before older checkpoints go
    for stale in checkpoint_dirs(run_dir)[:-keep_last]:
        if keep is None or stale.name != Path(keep).name:
            shutil.rmtree(stale, ignore_errors=True)
    return final


_FALL_BACK = "delete this checkpoint directory to fall back to the previous one"


def _check_state(state: Any, ckpt: Path) -> dict[str, Any]:
    """``state.json``'s content, or a RunError naming what is wrong and the checkpoint to delete."""
    def bad(what: str) -> RunError:
        return RunError(f"checkpoint {ckpt}: state.json {what}; {_FALL_BACK}")

    if not isinstance(state, dict):
        raise bad(f"holds a JSON {type(state).__name__}, not an object")
    step, data = state.get("step"), state.get("data")
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise bad(f"has step {step!r}, not a non-negative integer")
    if not isinstance(data, dict):
        raise bad(f"has data {data!r}, not an object with the data's shape")
    shape = data.get("shape")
    if not (isinstance(shape, list) and shape and all(isinstance(s, int) and s > 0 for s in shape)):
        raise bad(f"has data.shape {shape!r}, not a list of positive integers")
    if data.get("kind") not in ("points", "image"):
        raise bad(f"has data.kind {data.get('kind')!r}, not 'points' or 'image'")
    value_range, levels = data.get("value_range"), data.get("levels")
    if value_range is not None and not (isinstance(value_range, list) and len(value_range) == 2 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value_range)):
        raise bad(f"has data.value_range {value_range!r}, not two numbers or null")
    if levels is not None and not (isinstance(levels, int) and not isinstance(levels, bool) and levels > 1):
        raise bad(f"has data.levels {levels!r}, not an integer above 1 or null")
    for key, kind in (("rng", list), ("model", dict), ("seconds", (int, float)), ("ema_n_averaged", int)):
        if key in state and not isinstance(state[key], kind):
            raise bad(f"has {key} {state[key]!r} of the wrong type")
    return state


def read_state(ckpt: Path) -> dict[str, Any]:
    """The checked JSON state of checkpoint ``ckpt``."""
    try:
        state = json.loads((Path(ckpt) / "state.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RunError(f"checkpoint {ckpt}: state.json is unreadable ({err}); {_FALL_BACK}") from None
    return _check_state(state, Path(ckpt))


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flatten(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def changes(old: dict[str, Any], new: dict[str, Any]) -> dict[str, list[Any]]:
    """``{dotted key: [old value, new value]}`` for every setting that differs between two nested dicts, sorted."""
    a, b = _flatten(old), _flatten(new)
    return {k: [a.get(k), b.get(k)] for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)}


def check_model_binding(state: dict[str, Any], model_section: dict[str, Any], ckpt: Path,
                        defaults: dict[str, Any] | None = None, described_by: str = "config.yaml") -> None:
    """Refuse a checkpoint trained as another model than ``model_section`` describes (``config.yaml`` edited).

    A setting the checkpoint did not record (one added to flowforge after it was written) passes when
    ``model_section`` holds that setting's default (``defaults``, the model section of a default config), which
    is what the checkpoint was trained with.
    """
    trained_as = state.get("model")
    if trained_as is None:  # written before checkpoints recorded their model
        return
    trained_as = upgrade_model_section(trained_as, warn=False)  # settings moved since, in their new place
    a, b = _flatten(trained_as, "model."), _flatten(model_section, "model.")
    d = _flatten(defaults or {}, "model.")
    changed = sorted(k for k in a.keys() | b.keys()
                     if (a[k] != b.get(k) if k in a else not (k in d and d[k] == b.get(k))))
    if changed:
        diffs = ", ".join(f"{k} was {a.get(k)!r}, {described_by} says {b.get(k)!r}" for k in changed[:4])
        raise RunError(f"checkpoint {ckpt} was trained as another model than {described_by} describes ({diffs}); "
                       f"restore those settings in {described_by}, or train a new run")


def load_weights(module: nn.Module, path: Path) -> None:
    """Load safetensors weights into ``module`` (strict: every key must match)."""
    try:
        missing, unexpected = load_model(module, str(path), strict=False)
    except Exception as err:  # safetensors raises several types for corrupt headers
        raise RunError(f"cannot read weights from {path}: {err}") from None
    if missing or unexpected:
        raise RunError(f"weights in {path} do not fit the model (missing {sorted(missing)[:3]}, "
                       f"unexpected {sorted(unexpected)[:3]}); was the config changed since training?")


def load_adversary(ckpt: Path, net: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Restore the second network and its optimiser that :func:`save_checkpoint` wrote as ``adversary``."""
    ckpt = Path(ckpt)
    if not (ckpt / "adversary.safetensors").is_file():
        raise RunError(f"checkpoint {ckpt} holds no adversary.safetensors (the patch discriminator) although the "
                       f"model trains one; {_FALL_BACK}")
    load_weights(net, ckpt / "adversary.safetensors")
    try:
        _load_optimizer(optimizer, ckpt / "adversary_optimizer.safetensors")
    except Exception as err:  # missing or corrupt file
        raise RunError(f"cannot restore the discriminator's optimizer from {ckpt}: {err}; {_FALL_BACK}") from None


def load_checkpoint(ckpt: Path, *, model: nn.Module, optimizer: torch.optim.Optimizer | None = None,
                    ema: nn.Module | None = None) -> dict[str, Any]:
    """Restore what exists of model, EMA and optimizer from ``ckpt``; return its JSON state."""
    ckpt = Path(ckpt)
    state = read_state(ckpt)
    load_weights(model, ckpt / "model.safetensors")
    if ema is not None and (ckpt / "ema.safetensors").is_file():
        load_weights(ema, ckpt / "ema.safetensors")
    if optimizer is not None:
        try:
            _load_optimizer(optimizer, ckpt / "optimizer.safetensors")
        except Exception as err:  # corrupt file, missing metadata, another optimizer's state
            raise RunError(f"cannot restore the optimizer from {ckpt / 'optimizer.safetensors'}: {err}; delete "
                           f"this checkpoint to fall back to an older one") from None
    return state
