"""Discrete normalizing flows: :class:`NormalizingFlow` and the NICE, RealNVP and Glow presets."""

from .flow import NormalizingFlow
from .presets import glow, nice, realnvp

__all__ = ["NormalizingFlow", "glow", "nice", "realnvp"]
