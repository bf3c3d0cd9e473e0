"""Discrete normalizing flows: :class:`NormalizingFlow` and the NICE, RealNVP, Glow, NSF and MAF presets."""

from .density import maf, nsf
from .flow import NormalizingFlow
from .presets import glow, nice, realnvp

__all__ = ["NormalizingFlow", "glow", "maf", "nice", "nsf", "realnvp"]
