"""Conditioner networks of coupling layers: they map the masked input to shift / scale parameters."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class CouplingMLP(nn.Module):
    """An MLP on the flattened input, reshaped to ``out_shape``; the conditioner of NICE (arXiv:1410.8516, §5.1).

    The last layer starts at zero so every coupling starts as the identity. With ``context > 0`` a context vector
    (a conditional flow's ``c``) is concatenated to the input.

    Shapes: (batch, *in_shape), context (batch, context) or None -> (batch, *out_shape).
    """

    def __init__(self, in_shape: tuple[int, ...], out_shape: tuple[int, ...], hidden: int = 1000, layers: int = 5,
                 activation: type[nn.Module] = nn.ReLU, context: int = 0):
        super().__init__()
        self.out_shape = tuple(out_shape)
        self.context = context
        dims = [math.prod(in_shape) + context] + [hidden] * layers
        body: list[nn.Module] = []
        for a, b in zip(dims, dims[1:]):
            body += [nn.Linear(a, b), activation()]
        self.body = nn.Sequential(*body)
        self.out = nn.Linear(dims[-1], math.prod(out_shape))
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        if (context is None) != (self.context == 0):
            raise ValueError(f"CouplingMLP was built for a context of size {self.context}; got "
                             f"{'none' if context is None else tuple(context.shape)}")
        h = x.flatten(1) if context is None else torch.cat([x.flatten(1), context], dim=1)  # (B, in + context)
        return self.out(self.body(h)).reshape(x.shape[0], *self.out_shape)


class _ResBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.net = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1),
                                 nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.net(x)


class CouplingResNet(nn.Module):
    """Convolutional residual conditioner of RealNVP (arXiv:1605.08803, §4.1), without batch norm so that
    ``log_prob`` does not depend on the batch; zero-initialised output.

    Shapes: (batch, in_channels, H, W) -> (batch, out_channels, H, W).
    """

    def __init__(self, in_channels: int, out_channels: int, hidden: int = 64, blocks: int = 4):
        super().__init__()
        self.inp = nn.Conv2d(in_channels, hidden, 3, padding=1)
        self.blocks = nn.Sequential(*[_ResBlock(hidden) for _ in range(blocks)])
        self.out = nn.Sequential(nn.ReLU(), nn.Conv2d(hidden, out_channels, 3, padding=1))
        nn.init.zeros_(self.out[1].weight)
        nn.init.zeros_(self.out[1].bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.blocks(self.inp(x)))  # (B, out_channels, H, W)


class GlowConditioner(nn.Module):
    """Glow's coupling network NN() (arXiv:1807.03039, §3.3): conv3x3 - ReLU - conv1x1 - ReLU - zero-init conv3x3.

    Shapes: (batch, in_channels, H, W) -> (batch, out_channels, H, W).
    """

    def __init__(self, in_channels: int, out_channels: int, hidden: int = 512):
        super().__init__()
        last = nn.Conv2d(hidden, out_channels, 3, padding=1)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.net = nn.Sequential(nn.Conv2d(in_channels, hidden, 3, padding=1), nn.ReLU(),
                                 nn.Conv2d(hidden, hidden, 1), nn.ReLU(), last)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)
