"""Noising processes ``x_t = alpha_t x0 + sigma_t eps`` (t = 0 data); pure math, no parameters."""

from functools import partial
from typing import Callable

from .base import AffinePath, PathCoefficients, PathSample, expand_like
from .conversions import PREDICTIONS, Prediction, convert, from_x0_eps, to_x0_eps
from .edm import EDMPath
from .linear import LinearPath
from .ve import VEPath
from .vp import VPPath

PATHS: dict[str, Callable[[], AffinePath]] = {
    "linear": LinearPath,
    "ve": VEPath,
    "vp": VPPath,
    "vp-cosine": partial(VPPath, "cosine"),
    "edm": EDMPath,
}

__all__ = ["AffinePath", "EDMPath", "LinearPath", "PATHS", "PREDICTIONS", "PathCoefficients", "PathSample",
           "Prediction", "VEPath", "VPPath", "convert", "expand_like", "from_x0_eps", "to_x0_eps"]
