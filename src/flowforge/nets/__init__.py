"""Backbones: networks ``f(x, t, cond=None, interval=None)`` that know nothing of paths or training.

Every backbone is a :class:`Backbone` and declares what it can do (``shard_unit``, ``packs``, ``reads_text``,
``takes_interval``, ``can_checkpoint``); the time, label and interval embeddings they share are in
:mod:`flowforge.nets.conditioning`.
"""

from .attention import Attention, attend
from .backbone import Backbone
from .conditioning import IntervalEmbedding, LabelEmbedding, SinusoidalEmbedding, TimeEmbedding
from .coupling import CouplingMLP, CouplingResNet, GlowConditioner
from .dit import DIT_SIZES, POSITION_ENCODINGS, DiT, DiTSize
from .made import MADE
from .mlp import ACTIVATIONS, MLP
from .mmdit import MMDiT
from .positions import grid_positions, sincos_2d
from .rope import RotaryEmbedding2d, Rotation
from .unet import UNet

__all__ = ["ACTIVATIONS", "DIT_SIZES", "MLP", "POSITION_ENCODINGS", "Attention", "Backbone", "CouplingMLP",
           "CouplingResNet", "DiT", "DiTSize", "GlowConditioner", "IntervalEmbedding", "LabelEmbedding", "MADE",
           "MMDiT", "RotaryEmbedding2d", "Rotation", "SinusoidalEmbedding", "TimeEmbedding", "UNet", "attend",
           "grid_positions", "sincos_2d"]
