"""Fixed permutations of the channels (dim 1): reversal and a seeded random permutation."""

from __future__ import annotations

import torch
from torch import Tensor

from .base import Transform


def _zeros(x: Tensor) -> Tensor:
    return torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)


def _check_has_channels(name: str, x: Tensor) -> None:
    if x.dim() < 2:
        raise ValueError(f"{name} permutes dim 1, so it needs input of shape (batch, C, ...); got {tuple(x.shape)}")


class Reverse(Transform):
    r"""Reverse the order of the channels / features (dim 1), ``y[:, c] = x[:, C - 1 - c]``; logdet 0.

    The fixed permutation between coupling layers of RealNVP (arXiv:1605.08803, §3.5) and Glow's
    "reverse" baseline (arXiv:1807.03039, §3.2). Works for any ``C``.

    Example:
        >>> Reverse()(torch.tensor([[1.0, 2.0, 3.0]]))[0].tolist()
        [[3.0, 2.0, 1.0]]
    """

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        _check_has_channels("Reverse", x)
        return x.flip(1), _zeros(x)

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        _check_has_channels("Reverse", y)
        return y.flip(1), _zeros(y)


class Permutation(Transform):
    r"""A fixed random permutation ``pi`` of the channels / features (dim 1), ``y[:, c] = x[:, pi(c)]``;
    logdet 0. Glow's "shuffle" baseline (arXiv:1807.03039, §3.2).

    Arguments:
        num_features: size of dim 1.
        seed: seed of the permutation (drawn with a private ``torch.Generator``, so deterministic).

    Example:
        >>> layer = Permutation(5, seed=3)
        >>> x = torch.randn(2, 5)
        >>> torch.equal(layer.inverse(layer(x)[0])[0], x)
        True
    """

    def __init__(self, num_features: int, seed: int = 0):
        super().__init__()
        self.num_features = int(num_features)
        perm = torch.randperm(self.num_features, generator=torch.Generator().manual_seed(seed))
        self.register_buffer("perm", perm)
        self.register_buffer("inverse_perm", torch.argsort(perm))

    def _check(self, x: Tensor) -> None:
        _check_has_channels("Permutation", x)
        if x.shape[1] != self.num_features:
            raise ValueError(f"Permutation was built for {self.num_features} channels (dim 1); got input of "
                             f"shape {tuple(x.shape)}")

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        self._check(x)
        return x[:, self.perm], _zeros(x)

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        self._check(y)
        return y[:, self.inverse_perm], _zeros(y)
