"""Build a model from its typed config: registries of real constructors, no string lookups."""

from __future__ import annotations

from typing import Callable

from torch import nn

from ..config import ModelConfig, NetConfig
from ..nets import MLP
from ..paths import PATHS
from .continuous import ContinuousFlow
from .protocol import GenerativeModel


def _mlp(cfg: NetConfig, shape: tuple[int, ...]) -> nn.Module:
    return MLP(shape, width=cfg.width, depth=cfg.depth, time_embed_dim=cfg.time_embed_dim, activation=cfg.activation)


NETS: dict[str, Callable[[NetConfig, tuple[int, ...]], nn.Module]] = {"mlp": _mlp}


def _rectified_flow(cfg: ModelConfig, shape: tuple[int, ...]) -> GenerativeModel:
    return ContinuousFlow(PATHS[cfg.path](), NETS[cfg.net.name](cfg.net, shape), shape)


MODELS: dict[str, Callable[[ModelConfig, tuple[int, ...]], GenerativeModel]] = {"rectified-flow": _rectified_flow}


def build_model(cfg: ModelConfig, shape: tuple[int, ...]) -> GenerativeModel:
    """The model described by ``cfg`` for data of per-example ``shape``."""
    return MODELS[cfg.kind](cfg, tuple(shape))
