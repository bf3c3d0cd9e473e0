"""Noising processes ``x_t = alpha_t x0 + sigma_t eps`` (t = 0 data, t = 1 noise); pure math, no parameters."""

from .base import AffinePath, PathCoefficients, PathSample, expand_like
from .linear import LinearPath

PATHS: dict[str, type[AffinePath]] = {"linear": LinearPath}

__all__ = ["AffinePath", "LinearPath", "PathCoefficients", "PathSample", "PATHS", "expand_like"]
