"""The training engine."""

from .loop import TrainResult, train

__all__ = ["TrainResult", "train"]
