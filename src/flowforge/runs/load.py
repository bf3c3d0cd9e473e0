"""Reading a trained run back: ``flowforge.load(run_dir)`` returns the model, ready to sample."""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..config import Config, ConfigError, load_config
from ..errors import RunError, UserError
from ..models import GenerativeModel, build_model
from ..models.latent import wrap_latent
from .checkpoint import check_model_binding, latest_checkpoint, load_weights, read_state
from .vocabulary import read_vocabulary

# sample settings that only models with a sampler take; a normalizing flow is sampled by its exact inverse
SAMPLER_SETTINGS = ("sampler", "steps", "grid", "guidance", "shape")


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

    def sample_options(self, n: int, generator: torch.Generator | None = None, **overrides: Any) -> dict[str, Any]:
        """Keyword arguments of ``self.model.sample`` for ``n`` samples (see :func:`sample_options`)."""
        return sample_options(self.config, n, generator, model=self.model, **overrides)

    @property
    def sampler_name(self) -> str:
        """How the model is sampled by default, for reports."""
        return self.config.sample.sampler if self.model.takes_sampler else "exact inverse"


def read_config(run_dir: Path) -> Config:
    """The configuration a run was trained with (``run_dir/config.yaml``)."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise RunError(f"{run_dir} is not a flowforge run (no config.yaml); train one with `flowforge train CONFIG`")
    try:
        return load_config(path)
    except ConfigError as err:
        raise RunError(f"{path} is not a valid config: {err}") from None


def load_run(run_dir: str | Path, *, ema: bool = True, device: str = "cpu") -> Run:
    """Load the newest checkpoint of ``run_dir``.

    Arguments:
        run_dir: a directory written by :func:`flowforge.train`.
        ema: use the EMA weights when the run kept them (the usual choice for sampling).
        device: where to put the model.

    Raises:
        RunError: no run, no checkpoint, a damaged checkpoint, or a ``config.yaml`` whose model section is not
            the one the checkpoint was trained as.
    """
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    ckpt = latest_checkpoint(run_dir)
    if ckpt is None:
        raise RunError(f"{run_dir} has no checkpoint yet; train it first (or wait for the first train.ckpt_every steps)")
    state = read_state(ckpt)
    check_model_binding(state, config.to_dict()["model"], ckpt, Config().to_dict()["model"])
    data = state["data"]
    model = build_model(config.model, data, read_vocabulary(run_dir, state.get("vocabulary_sha256")))
    use_ema = ema and (ckpt / "ema.safetensors").is_file()
    load_weights(model, ckpt / ("ema.safetensors" if use_ema else "model.safetensors"))
    model = wrap_latent(model, data)  # data.latent: a model of images that decodes its latents
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


def sample_options(config: Config, n: int, generator: torch.Generator | None = None, *,
                   model: GenerativeModel | None = None, **overrides: Any) -> dict[str, Any]:
    """Keyword arguments of ``model.sample`` for ``n`` samples: the run's ``sample`` settings, ``overrides``
    (None = keep) on top, for a model with a sampler (the default when ``model`` is None). A normalizing flow's
    exact inverse takes no sampler: for it an explicit sampler setting is an error.

    A class-conditional model gets ``n`` labels cycling through its classes, so a
    picture shows every class and a sample set is balanced.
    """
    if model is not None and not model.takes_sampler:  # the model's sample_settings say so, nobody else
        asked = [k for k in SAMPLER_SETTINGS if overrides.get(k) is not None and k not in model.sample_settings]
        if asked:
            raise UserError(f"run {config.run.name!r} is a {config.model.kind} normalizing flow, sampled exactly by "
                            f"inverting it; {', '.join(asked)} apply only to models with a sampler")
        return {"generator": generator} if generator is not None else {}
    options = config.sample.options()
    if overrides.get("sampler") not in (None, config.sample.sampler):  # another sampler: its own options
        options = dataclasses.replace(config.sample, sampler=overrides["sampler"]).options()
    options.update({k: v for k, v in overrides.items() if v is not None})
    if config.model.num_classes is not None:
        options["labels"] = torch.arange(n) % config.model.num_classes
    if generator is not None:
        options["generator"] = generator
    return options


def check_sample_memory(n: int, shape: tuple[int, ...]) -> None:
    """Refuse a sample count whose float32 array alone would not fit in half this machine's memory."""
    need = n * math.prod(shape) * 4
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if need > total // 2:
        raise UserError(f"{n} samples of shape {tuple(shape)} take {need / 2**30:,.1f} GiB as float32, more than "
                        f"half of this machine's {total / 2**30:.0f} GiB; draw fewer (--n), or several sets with "
                        f"different seeds")


def draw_samples(model: GenerativeModel, n: int, options: dict[str, Any], chunk: int) -> torch.Tensor:
    """``model.sample(n, **options)`` in chunks of at most ``chunk`` examples, drawn one after the other from the
    same generator (so ``n <= chunk`` gives exactly the samples of one call); labels are split with them."""
    if n <= chunk:
        return model.sample(n, **options)
    labels = options.get("labels")
    parts = []
    for start in range(0, n, chunk):
        size = min(chunk, n - start)
        part = dict(options, labels=labels[start:start + size]) if labels is not None else options
        parts.append(model.sample(size, **part))
    return torch.cat(parts)


def check_finite_samples(samples: torch.Tensor) -> None:
    """Refuse samples with NaN or inf, the same way everywhere (sample, eval, inpaint)."""
    finite = torch.isfinite(samples.reshape(len(samples), -1)).all(1)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        raise RunError(f"{bad} of {len(samples)} samples are NaN/inf: the sampler diverged or the weights are "
                       f"damaged; try more sampling steps, another sampler, or an earlier checkpoint")
