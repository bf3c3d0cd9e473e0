"""Inpainting masks by name: which part of an image is missing.

:data:`PAPER_MASKS` is the list of NICE's inpainting figure (Dinh et al., 2015, arXiv:1410.8516, §5.2, Fig. 6:
top rows, bottom rows, odd pixels, even pixels, left side, right side, middle vertically, middle horizontally,
75% random, 90% random); ``center`` and ``random:P`` with any P are offered besides.
"""

from __future__ import annotations

import re

import torch
from torch import Tensor

from ..errors import UserError

PAPER_MASKS = ("top", "bottom", "odd", "even", "left", "right", "middle-vertical", "middle-horizontal",
               "random:0.75", "random:0.9")
MASK_NAMES = ("top", "bottom", "odd", "even", "left", "right", "middle-vertical", "middle-horizontal", "center",
              "random:P")


def _missing_region(spec: str, h: int, w: int) -> Tensor | None:
    """(h, w) True where ``spec`` (a fixed, non-random mask) says the pixel is missing; None for other names."""
    rows = torch.arange(h)[:, None].expand(h, w)
    cols = torch.arange(w)[None, :].expand(h, w)
    flat = rows * w + cols  # the pixel's index in row-major order: "odd"/"even" count pixels, as NICE does
    regions = {
        "left": cols < w // 2,
        "right": cols >= w // 2,
        "top": rows < h // 2,
        "bottom": rows >= h // 2,
        "odd": flat % 2 == 1,
        "even": flat % 2 == 0,
        "middle-vertical": (cols >= w // 4) & (cols < w // 4 + w // 2),  # a vertical band, half the width
        "middle-horizontal": (rows >= h // 4) & (rows < h // 4 + h // 2),  # a horizontal band, half the height
        "center": (rows >= h // 4) & (rows < h // 4 + h // 2) & (cols >= w // 4) & (cols < w // 4 + w // 2),
    }
    return regions.get(spec)


def make_mask(spec: str, shape: tuple[int, ...], generator: torch.Generator | None = None) -> Tensor:
    """A boolean mask of one example's ``shape`` (C, H, W): True where the pixel is known.

    ``spec`` names what is *missing*: ``top``/``bottom``/``left``/``right`` halves, ``odd``/``even`` pixels (by
    row-major index: on an even width, every other column), the ``middle-vertical`` / ``middle-horizontal`` band
    (half the width / height, centred), the ``center`` square (half the height and width), or ``random:P``, each
    pixel missing with probability P (the same for all channels).
    """
    if len(shape) != 3:
        raise UserError(f"--mask {spec}: masks by name are for images (C, H, W); this data has shape {shape}")
    _, h, w = shape
    missing = _missing_region(spec, h, w)
    if missing is not None:
        known = ~missing
    elif m := re.fullmatch(r"random:([0-9]*\.?[0-9]+)", spec):
        p = float(m.group(1))
        if not 0 < p < 1:
            raise UserError(f"--mask {spec}: the missing fraction must be between 0 and 1, got {p}")
        known = torch.rand(h, w, generator=generator) >= p
    else:
        raise UserError(f"--mask {spec!r}: unknown mask; choose one of {', '.join(MASK_NAMES)} (e.g. random:0.75)")
    return known.expand(shape).clone()
