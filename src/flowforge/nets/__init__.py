"""Backbones: networks ``f(x, t)`` that know nothing of paths or training."""

from .coupling import CouplingMLP, CouplingResNet, GlowConditioner
from .embeddings import SinusoidalEmbedding
from .mlp import ACTIVATIONS, MLP
from .unet import UNet

__all__ = ["ACTIVATIONS", "CouplingMLP", "CouplingResNet", "GlowConditioner", "MLP", "SinusoidalEmbedding", "UNet"]
