"""flowforge: flow-based generative modelling — normalizing flows, flow matching and diffusion under one API.

Train with ``flowforge.train.train(config)`` (or ``flowforge train CONFIG``), then::

    model = flowforge.load("runs/demo")        # the trained model, EMA weights
    x = model.sample(1000, sampler="heun", steps=20)
    flowforge.evaluate("runs/demo")            # scores next to the noise floor and a Gaussian baseline

A run exported by ``flowforge export RUN_DIR --out DIR`` loads with ``flowforge.from_pretrained(DIR)`` (or a Hub
repository id).
"""

from .version import __version__
from .errors import ConfigError, RunError, TrainingDiverged, UserError


def __getattr__(name: str):
    """``Config`` and ``load_config`` on first use: the config's registries import torch, which ``flowforge
    --version`` and ``--help`` need not wait for."""
    if name in ("Config", "load_config"):
        from . import config

        return getattr(config, name)
    raise AttributeError(f"module 'flowforge' has no attribute {name!r}")


def load(run_dir, *, ema: bool = True, device: str = "cpu"):
    """The trained model of ``run_dir`` in eval mode (see :func:`flowforge.runs.load`)."""
    from .runs import load as _load

    return _load(run_dir, ema=ema, device=device)


def from_pretrained(name_or_path, *, device: str = "cpu", **hub):
    """The model of a folder written by ``flowforge export``, or of a Hugging Face Hub repository id (through
    ``huggingface_hub``), in eval mode (see :func:`flowforge.jobs.from_pretrained`)."""
    from .jobs import from_pretrained as _from_pretrained

    return _from_pretrained(name_or_path, device=device, **hub)


def evaluate(run_dir, **options):
    """Score a trained run's samples (see :func:`flowforge.jobs.evaluate`)."""
    from .jobs import evaluate as _evaluate

    return _evaluate(run_dir, **options)


__all__ = ["Config", "ConfigError", "RunError", "TrainingDiverged", "UserError", "evaluate", "from_pretrained", "load",
           "load_config", "__version__"]
