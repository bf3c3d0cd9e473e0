"""Backbones: networks ``f(x, t)`` that know nothing of paths or training."""

from .embeddings import SinusoidalEmbedding
from .mlp import ACTIVATIONS, MLP

__all__ = ["ACTIVATIONS", "MLP", "SinusoidalEmbedding"]
