"""Models: the shared protocol and the families that implement it."""

from .build import MODELS, NETS, build_model
from .continuous import ContinuousFlow
from ..protocol import GenerativeModel

__all__ = ["ContinuousFlow", "GenerativeModel", "MODELS", "NETS", "build_model"]
