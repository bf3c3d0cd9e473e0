"""Models: the shared protocol and the families that implement it."""

from ..protocol import GenerativeModel
from .build import MODELS, NETS, TIME_SAMPLERS, build_model, describe_model
from .conditioning import Conditioning
from .continuous import WEIGHTINGS, ContinuousFlow

__all__ = ["MODELS", "NETS", "TIME_SAMPLERS", "WEIGHTINGS", "Conditioning", "ContinuousFlow", "GenerativeModel",
           "build_model", "describe_model"]
