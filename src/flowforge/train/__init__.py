"""The training engine: :func:`train`, its ``on_step`` hook, and the weight averages (:func:`make_ema`)."""

from .ema import EMA, make_ema
from .loop import StepCallback, TrainResult, train

__all__ = ["EMA", "StepCallback", "TrainResult", "make_ema", "train"]
