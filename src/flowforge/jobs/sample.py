"""``flowforge sample``: draw samples of a trained run into an array (``.npy``) or a picture (``.png``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..data import load_dataset
from ..data.latents import pixel_data
from ..errors import UserError
from ..runs import Run, check_finite_samples, check_sample_memory, draw_samples, load_run, write_samples_picture
from .device import device_generator, resolve_device

SAMPLE_CHUNK = 10_000  # examples drawn per model call


def image_size(text: str, data_shape: tuple[int, ...]) -> tuple[int, int, int]:
    """``HxW`` as an image shape with the data's channels.

    Example:
        >>> image_size("16x24", (1, 8, 8))
        (1, 16, 24)
    """
    parts = text.lower().split("x")
    if len(data_shape) != 3 or len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise UserError(f"--size {text}: expected HEIGHTxWIDTH such as 16x16, for a model of images "
                        f"(this run's data has shape {data_shape})")
    return (data_shape[0], int(parts[0]), int(parts[1]))


MAX_SIZE_FACTOR = 8  # --size: each side at most this many times the trained one (64x the pixels)


def check_size(run: Run, shape: tuple[int, int, int]) -> None:
    """Refuse a ``--size`` the network cannot take (one forward of one example at that size, so every backbone's
    own limits apply: a fixed-size net, a patch size that does not divide it) or that is beyond
    :data:`MAX_SIZE_FACTOR` times the trained size on a side."""
    trained = tuple(run.data["shape"])
    if any(s > MAX_SIZE_FACTOR * t for s, t in zip(shape[1:], trained[1:])):
        raise UserError(f"--size {shape[1]}x{shape[2]}: more than {MAX_SIZE_FACTOR}x the {trained[1]}x{trained[2]} "
                        f"the model was trained at on a side; it never saw such images, and sampling them takes "
                        f"memory and time that grow with the square of the pixels. Ask for at most "
                        f"{MAX_SIZE_FACTOR * trained[1]}x{MAX_SIZE_FACTOR * trained[2]}")
    net = getattr(run.model, "net", None)
    if net is None or shape == trained:
        return
    device = next(net.parameters()).device
    probe = torch.zeros(1, *shape, device=device)
    try:
        with torch.no_grad():
            net(probe, torch.full((1,), 0.5, device=device))
    except (RuntimeError, ValueError, AssertionError) as err:
        raise UserError(f"--size {shape[1]}x{shape[2]}: this run's network ({run.config.model.net.name}) does not "
                        f"take images of that size ({str(err).splitlines()[0] if str(err) else type(err).__name__}); "
                        f"sample at its {trained[1]}x{trained[2]}, or train a backbone that takes several "
                        f"resolutions (model.net.name=dit with model.net.positions=rope)") from None


def _check_request(run: Run, run_dir: str | Path, *, prompt: str | None, guidance: float | None,
                   compile: bool) -> None:
    """Refuse what this run cannot do, naming what would work."""
    if compile and not run.model.takes_sampler:
        raise UserError(f"--compile: {run_dir} is a {run.config.model.kind} flow, sampled by its exact "
                        f"inverse in one pass; --compile applies to models with a sampler, drop it")
    if prompt is not None and run.config.model.text.captions == "none":
        raise UserError(f"--prompt {prompt!r}: {run_dir} has no text input (model.text.captions is unset); "
                        f"sample it without --prompt, or train a text model such as configs/mmdit-fashion-text.yaml")
    if guidance is not None and run.config.model.num_classes is None:
        raise UserError(f"--guidance {guidance}: {run_dir} is not class-conditional (model.num_classes is "
                        "unset); guidance needs a model trained with model.num_classes and label_dropout > 0")


def parse_context(text: str, run: Run, run_dir: str | Path) -> torch.Tensor:
    """``--context 0.1,0.3`` as the (C,) context vector of a conditional flow, checked against the run.

    Example:
        >>> class R: model = type("M", (), {"context_dim": 2})()
        >>> parse_context("0.1, -2", R(), "runs/x").tolist()
        [0.10000000149011612, -2.0]
    """
    size = getattr(run.model, "context_dim", 0)
    if not size:
        raise UserError(f"--context: {run_dir} is not a conditional flow (no data.context_columns); drop --context")
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise UserError(f"--context {text}: expected {size} comma-separated numbers, e.g. "
                        f"{','.join(['0.0'] * size)}") from None
    if len(values) != size:
        raise UserError(f"--context {text}: this run's context has {size} values, got {len(values)}")
    return torch.tensor(values)


def sample_run(run_dir: str | Path, *, n: int, out: str | Path, seed: int = 0, size: str | None = None,
               prompt: str | None = None, compile: bool = False, progress: bool = False,
               context: str | None = None, device: str = "auto", **settings: object) -> Path:
    """Draw ``n`` samples of ``run_dir`` (the run's sample settings, ``settings`` such as ``sampler``,
    ``steps``, ``grid``, ``guidance`` on top; None = the run's) and write them to ``out``: ``.npy``, the array
    in model space, or ``.png``, a picture. ``size`` (``HxW``) samples images at another resolution; ``prompt``
    is every sample's caption (text models); ``compile`` runs the network through ``torch.compile`` first;
    ``context`` (``"0.1,0.3"``) draws a conditional flow's samples from ``p(x | c)``; ``device`` (``auto``,
    ``cpu``, ``cuda``, ``cuda:N``: :func:`~.device.resolve_device`) is where the network runs and the noise is
    drawn."""
    out = Path(out)
    if out.suffix not in (".npy", ".png"):
        raise UserError(f"--out {out}: unsupported extension {out.suffix!r}; use .npy (array) or .png (picture)")
    out.parent.mkdir(parents=True, exist_ok=True)  # a bad path fails now, not after sampling
    where = resolve_device(device)
    run = load_run(run_dir, device=where)
    _check_request(run, run_dir, prompt=prompt, guidance=settings.get("guidance"), compile=compile)
    if compile:
        run.model.net.compile()
    shape = image_size(size, tuple(run.data["shape"])) if size else None
    if shape is not None:
        check_size(run, shape)
    check_sample_memory(n, shape or tuple(run.data["shape"]))
    options = run.sample_options(n, device_generator(where, seed), shape=shape, progress=progress, **settings)
    if prompt is not None:  # the prompt replaces the labels' captions
        options.pop("labels", None)
        options["prompts"] = prompt
    if context is not None or getattr(run.model, "context_dim", 0):
        if context is None:
            raise UserError(f"{run_dir} is a conditional flow: give --context with {run.model.context_dim} values")
        options["context"] = parse_context(context, run, run_dir).to(where)
    samples = draw_samples(run.model, n, options, SAMPLE_CHUNK).cpu()  # one copy to the host, after sampling
    check_finite_samples(samples)
    if out.suffix == ".npy":
        np.save(out, samples.cpu().numpy())
    else:
        title = run.config.run.name + (f": {prompt!r}" if prompt is not None else "")
        write_samples_picture(samples, load_dataset(pixel_data(run.config.data)), out, title=title)
    return out
