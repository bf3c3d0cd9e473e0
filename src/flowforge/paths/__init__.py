"""Noising processes ``x_t = alpha_t x0 + sigma_t eps`` (t = 0 data); pure math, no parameters."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, Callable

from .base import AffinePath, PathCoefficients, PathSample, expand_like
from .conversions import PREDICTIONS, Prediction, convert, from_x0_eps, to_x0_eps
from .edm import EDMPath
from .linear import LinearPath
from .ve import VEPath
from .vp import VPPath


@dataclass(frozen=True)
class PathSpec:
    """A named path: its constructor and the settings it reads (``model.<param>`` in a config)."""

    build: Callable[..., AffinePath]
    params: tuple[str, ...] = ()

    def __call__(self, **settings: Any) -> AffinePath:
        """The path, built from the settings it reads (others are not its own and are left alone)."""
        return self.build(**{k: v for k, v in settings.items() if k in self.params})


# a new path is one file and one line here; the config's choices follow from it
PATHS: dict[str, PathSpec] = {
    "linear": PathSpec(LinearPath, ("sigma_min",)),
    "ve": PathSpec(VEPath, ("sigma_max",)),
    "vp": PathSpec(partial(VPPath, "linear")),
    "vp-cosine": PathSpec(partial(VPPath, "cosine")),
    "edm": PathSpec(EDMPath, ("sigma_max",)),
}

__all__ = ["AffinePath", "EDMPath", "LinearPath", "PATHS", "PREDICTIONS", "PathCoefficients", "PathSample",
           "PathSpec", "Prediction", "VEPath", "VPPath", "convert", "expand_like", "from_x0_eps", "to_x0_eps"]
