"""A time-conditioned multilayer perceptron for low-dimensional data."""

from __future__ import annotations

import math
from typing import Any

from torch import Tensor, nn

from .backbone import Backbone
from .conditioning import IntervalEmbedding, TimeEmbedding, add_interval

ACTIVATIONS: dict[str, type[nn.Module]] = {"silu": nn.SiLU, "relu": nn.ReLU, "gelu": nn.GELU}


class MLP(Backbone):
    """``f(x, t)``: an MLP on the flattened input with a sinusoidal time embedding.

    The embedding of ``t`` goes through a small MLP and is added to every hidden
    layer, so time can modulate each layer rather than only the first.

    Arguments:
        shape: per-example input shape, e.g. ``(2,)`` or ``(1, 8, 8)``; the output has the same shape.
        width: hidden units per layer.
        depth: number of hidden layers.
        time_embed_dim: size of the sinusoidal time features.
        activation: ``silu``, ``relu`` or ``gelu``.
        time_scale: factor on ``t`` before the sinusoidal features: 1000 for ``t`` in [0, 1]
            (DDPM's step range), 1 for EDM's ``c_noise = ln(sigma) / 4``.
        interval: take a second time, the interval ``t - r`` of an average-velocity (MeanFlow) model,
            embedded like ``t`` and added to its embedding; zero at initialisation.

    Shapes: ``x`` (batch, *shape), ``t`` (batch,), ``interval`` (batch,) or None -> (batch, *shape); no ``cond``
    (the MLP has no class input).
    """

    def __init__(self, shape: tuple[int, ...], width: int = 256, depth: int = 3,
                 time_embed_dim: int = 64, activation: str = "silu", time_scale: float = 1000.0,
                 interval: bool = False):
        super().__init__()
        self.shape = tuple(shape)
        self.takes_interval = interval
        dim = math.prod(self.shape)
        act = ACTIVATIONS[activation]
        self.time_embed = TimeEmbedding(time_embed_dim, width, time_scale, act, shallow=True)
        self.interval_embed = (IntervalEmbedding(time_embed_dim, width, time_scale, act, shallow=True)
                               if interval else None)
        self.inp = nn.Linear(dim, width)
        self.time_proj = nn.ModuleList(nn.Linear(width, width) for _ in range(depth))
        self.hidden = nn.ModuleList(nn.Linear(width, width) for _ in range(depth - 1))
        self.act = act()
        self.out = nn.Linear(width, dim)

    @classmethod
    def from_config(cls, cfg: Any, shape: tuple[int, ...], time_scale: float, cond_size: int | None,
                    interval: bool = False) -> MLP:
        if cond_size is not None:
            raise ValueError("model.net.name=mlp has no class input; use model.net.name=unet for model.num_classes")
        return cls(shape, width=cfg.width, depth=cfg.depth, time_embed_dim=cfg.time_embed_dim,
                   activation=cfg.activation, time_scale=time_scale, interval=interval)

    @staticmethod
    def describe(cfg: Any) -> str:
        return f"MLP {cfg.depth}x{cfg.width} ({cfg.activation})"

    def forward(self, x: Tensor, t: Tensor, cond: Tensor | None = None, interval: Tensor | None = None) -> Tensor:
        if cond is not None:
            raise ValueError("a condition (class labels) was given to an MLP, which has no class input")
        batch = x.shape[0]
        temb = add_interval(self.time_embed(t), self.interval_embed, interval)  # (B, W)
        h = self.inp(x.reshape(batch, -1))  # (B, W)
        for i, proj in enumerate(self.time_proj):
            h = self.act(h + proj(temb))  # (B, W)
            if i < len(self.hidden):
                h = self.hidden[i](h)
        return self.out(h).reshape(batch, *self.shape)  # (B, *shape)
