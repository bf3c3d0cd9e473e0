"""Inpainting masks by name: which part of an image is missing."""

from __future__ import annotations

import re

import torch
from torch import Tensor

from ..errors import UserError

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
