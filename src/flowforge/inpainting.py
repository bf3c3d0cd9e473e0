"""``flowforge inpaint``: masks by name, and the picture of original / masked / filled images."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .errors import UserError

MASK_NAMES = ("left", "right", "top", "bottom", "center", "random:P")


def make_mask(spec: str, shape: tuple[int, ...], generator: torch.Generator | None = None) -> Tensor:
    """A boolean mask of one example's ``shape`` (C, H, W): True where the pixel is known.

    ``spec`` names what is *missing*: ``left``/``right``/``top``/``bottom`` halves, the ``center`` square
    (half the height and width), or ``random:P``, each pixel missing with probability P (same for all channels).
    """
    if len(shape) != 3:
        raise UserError(f"--mask {spec}: masks by name are for images (C, H, W); this data has shape {shape}")
    _, h, w = shape
    known = torch.ones(h, w, dtype=torch.bool)
    if spec == "left":
        known[:, : w // 2] = False
    elif spec == "right":
        known[:, w // 2:] = False
    elif spec == "top":
        known[: h // 2] = False
    elif spec == "bottom":
        known[h // 2:] = False
    elif spec == "center":
        known[h // 4: h // 4 + h // 2, w // 4: w // 4 + w // 2] = False
    elif m := re.fullmatch(r"random:([0-9]*\.?[0-9]+)", spec):
        p = float(m.group(1))
        if not 0 < p < 1:
            raise UserError(f"--mask {spec}: the missing fraction must be between 0 and 1, got {p}")
        known = torch.rand(h, w, generator=generator) >= p
    else:
        raise UserError(f"--mask {spec!r}: unknown mask; choose one of {', '.join(MASK_NAMES)} (e.g. random:0.75)")
    return known.expand(shape).clone()


def inpaint_run(run_dir: str | Path, mask: str, *, n: int = 8, out: str | Path, seed: int = 0,
                **options: Any) -> Path:
    """Inpaint ``n`` held-out images of a trained run under the named ``mask``; write a grid whose rows are
    (original, masked, filled) triples. ``options`` go to the model's ``inpaint``."""
    from .data import load_dataset
    from .runs import load_run
    from .viz import image_grid

    run = load_run(run_dir)
    dataset = load_dataset(run.config.data)
    if dataset.kind != "image":
        raise UserError(f"{run_dir}: inpainting pictures need image data, this run has {dataset.kind}; "
                        f"call model.inpaint(x, mask) from Python for other data")
    gen = torch.Generator().manual_seed(seed)
    x = dataset.test[torch.randperm(len(dataset.test), generator=gen)[:n]]  # (n, C, H, W)
    known = torch.stack([make_mask(mask, dataset.shape, gen) for _ in range(len(x))])
    if hasattr(run.model, "time_grid"):  # a continuous model samples along its path: the run's sampler by default
        options = {"sampler": run.config.sample.sampler, "steps": run.config.sample.steps, **options}
    filled = run.model.inpaint(x, known, generator=gen, **options)
    pixels = [dataset.to_pixels(t) for t in (x, torch.where(known, x, torch.full_like(x, float("nan"))), filled)]
    pixels[1] = torch.nan_to_num(pixels[1], nan=0.5)  # missing pixels shown grey
    rows = torch.stack(pixels, dim=1).reshape(-1, *dataset.shape)  # (3n, C, H, W): triples side by side
    return image_grid(rows, Path(out), nrow=6 if len(x) % 2 == 0 else 3, scale=max(1, 96 // dataset.shape[-1]))
