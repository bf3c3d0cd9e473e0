"""Models: the shared protocol and the families that implement it."""

from ..protocol import GenerativeModel
from .build import MODELS, NETS, TIME_SAMPLERS, build_model, describe_model
from .conditioning import Conditioning
from .continuous import ContinuousFlow
from .objectives import LOSSES, OBJECTIVES, WEIGHTINGS, Objective, Paired

__all__ = ["LOSSES", "MODELS", "NETS", "OBJECTIVES", "TIME_SAMPLERS", "WEIGHTINGS", "Conditioning", "ContinuousFlow",
           "GenerativeModel", "Objective", "Paired", "build_model", "describe_model"]
