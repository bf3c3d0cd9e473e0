"""Reading a trained run back: ``flowforge.load(run_dir)`` returns the model, ready to sample."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from .config import Config, ConfigError, from_dict
from .errors import RunError
from .models import GenerativeModel, build_model
from .train.checkpoint import latest_checkpoint, load_weights, read_state


@dataclass
class Run:
    """A trained run: its config, the model (EMA weights unless asked otherwise) and where they came from."""

    dir: Path
    config: Config
    model: GenerativeModel
    checkpoint: Path
    step: int
    data: dict[str, Any]  # kind, shape, value_range, levels of the training data
    weights: str  # "ema" or "model"


def read_config(run_dir: Path) -> Config:
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise RunError(f"{run_dir} is not a flowforge run (no config.yaml); train one with `flowforge train CONFIG`")
    try:
        return from_dict(yaml.safe_load(path.read_text()) or {})
    except (ConfigError, yaml.YAMLError) as err:
        raise RunError(f"{path} is not a valid config: {err}") from None


def load_run(run_dir: str | Path, *, ema: bool = True, device: str = "cpu") -> Run:
    """Load the newest checkpoint of ``run_dir``.

    Arguments:
        run_dir: a directory written by :func:`flowforge.train`.
        ema: use the EMA weights when the run kept them (the usual choice for sampling).
        device: where to put the model.
    """
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    ckpt = latest_checkpoint(run_dir)
    if ckpt is None:
        raise RunError(f"{run_dir} has no checkpoint yet; train it first (or wait for the first train.ckpt_every steps)")
    state = read_state(ckpt)
    data = state["data"]
    model = build_model(config.model, data)
    use_ema = ema and (ckpt / "ema.safetensors").is_file()
    load_weights(model, ckpt / ("ema.safetensors" if use_ema else "model.safetensors"))
    model.to(device).eval()
    return Run(dir=run_dir, config=config, model=model, checkpoint=ckpt, step=state["step"], data=data,
               weights="ema" if use_ema else "model")


def load(run_dir: str | Path, *, ema: bool = True, device: str = "cpu") -> GenerativeModel:
    """The trained model of ``run_dir`` in eval mode (EMA weights by default).

    Example::

        model = flowforge.load("runs/demo")
        x = model.sample(1000, sampler="heun", steps=20)
    """
    return load_run(run_dir, ema=ema, device=device).model


def read_json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def sample_options(config: Config, n: int, generator: torch.Generator | None = None, **overrides: Any) -> dict[str, Any]:
    """Keyword arguments of ``model.sample`` from the run's ``sample`` settings, ``overrides`` (None = keep) on top.

    A class-conditional model gets ``n`` labels cycling through its classes, so a
    picture shows every class and a sample set is balanced. Families without a
    sampler (the normalizing flows' exact inverse) ignore what they do not take.
    """
    options = config.sample.options()
    if overrides.get("sampler") not in (None, config.sample.sampler):  # another sampler: its own options
        options = dataclasses.replace(config.sample, sampler=overrides["sampler"]).options()
    options.update({k: v for k, v in overrides.items() if v is not None})
    if config.model.num_classes is not None:
        options["labels"] = torch.arange(n) % config.model.num_classes
    if generator is not None:
        options["generator"] = generator
    return options
