"""Build a model from its typed config: registries of real constructors, no string lookups.

``data`` is the run's data spec (``data.json``): ``shape``, ``kind``, ``levels``, ``value_range``.
"""

from __future__ import annotations

from typing import Any, Callable

from torch import nn

from ..config import ModelConfig, NetConfig
from ..flows import glow, nice, realnvp
from ..nets import MLP
from ..paths import PATHS
from .continuous import ContinuousFlow
from ..protocol import GenerativeModel


def _mlp(cfg: NetConfig, shape: tuple[int, ...]) -> nn.Module:
    return MLP(shape, width=cfg.width, depth=cfg.depth, time_embed_dim=cfg.time_embed_dim, activation=cfg.activation)


NETS: dict[str, Callable[[NetConfig, tuple[int, ...]], nn.Module]] = {"mlp": _mlp}


def _rectified_flow(cfg: ModelConfig, data: dict[str, Any]) -> GenerativeModel:
    shape = tuple(data["shape"])
    return ContinuousFlow(PATHS[cfg.path](), NETS[cfg.net.name](cfg.net, shape), shape)


def _flow(builder: Callable) -> Callable[[ModelConfig, dict[str, Any]], GenerativeModel]:
    return lambda cfg, data: builder(cfg.flow, data)


MODELS: dict[str, Callable[[ModelConfig, dict[str, Any]], GenerativeModel]] = {
    "rectified-flow": _rectified_flow, "nice": _flow(nice), "realnvp": _flow(realnvp), "glow": _flow(glow),
}


def build_model(cfg: ModelConfig, data: dict[str, Any]) -> GenerativeModel:
    """The model described by ``cfg`` for the data described by ``data`` (at least ``{"shape": [...]}``)."""
    return MODELS[cfg.kind](cfg, data)
