"""Backbones: networks ``f(x, t)`` that know nothing of paths or training."""

from .attention import Attention, attend
from .coupling import CouplingMLP, CouplingResNet, GlowConditioner
from .dit import DIT_SIZES, POSITION_ENCODINGS, DiT, DiTSize
from .embeddings import SinusoidalEmbedding
from .mlp import ACTIVATIONS, MLP
from .mmdit import MMDiT
from .positions import grid_positions, sincos_2d
from .rope import RotaryEmbedding2d, Rotation
from .unet import UNet

__all__ = ["ACTIVATIONS", "DIT_SIZES", "MLP", "POSITION_ENCODINGS", "Attention", "CouplingMLP", "CouplingResNet", "DiT",
           "DiTSize", "GlowConditioner", "MMDiT", "RotaryEmbedding2d", "Rotation", "SinusoidalEmbedding", "UNet", "attend",
           "grid_positions", "sincos_2d"]
