"""Discrete image intensities to model space: ``k in {0, ..., L-1}`` to ``[0, 1]`` or ``[-1, 1]``."""

from __future__ import annotations

from typing import Literal

import numpy as np

ImageRange = Literal["symmetric", "unit"]

MODEL_RANGES: dict[str, tuple[float, float]] = {"symmetric": (-1.0, 1.0), "unit": (0.0, 1.0)}


def model_range(image_range: ImageRange) -> tuple[float, float]:
    """``(lo, hi)`` of model space for ``image_range``."""
    return MODEL_RANGES[image_range]


def scale_levels(k: np.ndarray, levels: int, image_range: ImageRange) -> np.ndarray:
    """Map integer intensities ``k`` in ``[0, levels - 1]`` linearly onto the model range, as float32.

    ``k = 0`` goes to ``lo`` and ``k = levels - 1`` to ``hi``; the shape is unchanged.
    """
    lo, hi = model_range(image_range)
    unit = k.astype(np.float32) / np.float32(levels - 1)
    return (lo + (hi - lo) * unit).astype(np.float32)
