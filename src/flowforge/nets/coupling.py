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
        check_context("CouplingMLP", self.context, context)
        h = x.flatten(1) if context is None else torch.cat([x.flatten(1), context], dim=1)  # (B, in + context)
        return self.out(self.body(h)).reshape(x.shape[0], *self.out_shape)


def check_context(name: str, size: int, context: Tensor | None) -> None:
    """A ValueError unless ``context`` is None for a net built without one (``size == 0``) or (batch, size)."""
    if (context is None) != (size == 0) or (context is not None and (context.dim() != 2 or context.shape[1] != size)):
        raise ValueError(f"{name} was built for a context of size {size}; got "
                         f"{'none' if context is None else tuple(context.shape)}")


def with_context_channels(name: str, size: int, x: Tensor, context: Tensor | None) -> Tensor:
    """An image conditioner's input: ``x`` (B, C, H, W) with the context (B, size) broadcast as ``size`` more
    constant channels (B, C + size, H, W), the way conditional image couplings read a global vector."""
    check_context(name, size, context)
    if context is None:
        return x
    return torch.cat([x, context[:, :, None, None].expand(-1, -1, *x.shape[2:])], dim=1)  # (B, C + size, H, W)


class _ResBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.net = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1),
                                 nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.net(x)


class CouplingResNet(nn.Module):
    """Convolutional residual conditioner of RealNVP (arXiv:1605.08803, §4.1), without batch norm so that
    ``log_prob`` does not depend on the batch; zero-initialised output. With ``context > 0`` the context vector
    of a conditional flow enters as ``context`` constant input channels.

    Shapes: (batch, in_channels, H, W), context (batch, context) or None -> (batch, out_channels, H, W).
    """

    def __init__(self, in_channels: int, out_channels: int, hidden: int = 64, blocks: int = 4, context: int = 0):
        super().__init__()
        self.context = context
        self.inp = nn.Conv2d(in_channels + context, hidden, 3, padding=1)
        self.blocks = nn.Sequential(*[_ResBlock(hidden) for _ in range(blocks)])
        self.out = nn.Sequential(nn.ReLU(), nn.Conv2d(hidden, out_channels, 3, padding=1))
        nn.init.zeros_(self.out[1].weight)
        nn.init.zeros_(self.out[1].bias)

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        h = self.inp(with_context_channels("CouplingResNet", self.context, x, context))  # (B, hidden, H, W)
        return self.out(self.blocks(h))  # (B, out_channels, H, W)


class GlowConditioner(nn.Module):
    """Glow's coupling network NN() (arXiv:1807.03039, §3.3): conv3x3 - ReLU - conv1x1 - ReLU - zero-init conv3x3.
    With ``context > 0`` a conditional flow's context vector enters as ``context`` constant input channels.

    Shapes: (batch, in_channels, H, W), context (batch, context) or None -> (batch, out_channels, H, W).
    """

    def __init__(self, in_channels: int, out_channels: int, hidden: int = 512, context: int = 0):
        super().__init__()
        self.context = context
        last = nn.Conv2d(hidden, out_channels, 3, padding=1)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.net = nn.Sequential(nn.Conv2d(in_channels + context, hidden, 3, padding=1), nn.ReLU(),
                                 nn.Conv2d(hidden, hidden, 1), nn.ReLU(), last)

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        return self.net(with_context_channels("GlowConditioner", self.context, x, context))  # (B, out, H, W)
