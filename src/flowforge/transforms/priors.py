"""Base distributions of normalizing flows: the standard Gaussian and NICE's standard logistic."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import sum_except_batch


def _check_sample_args(shape: Sequence[int], temperature: float) -> None:
    if len(shape) < 1:
        raise ValueError("sample: shape must include the batch dimension, e.g. (n, D) or (n, C, H, W)")
    if not temperature > 0:
        raise ValueError(f"sample: temperature must be positive; got {temperature}")


def _check_batch(z: Tensor) -> None:
    if z.dim() < 2:
        raise ValueError(f"log_prob expects z of shape (batch, *event); got {tuple(z.shape)}")


class StandardGaussian(nn.Module):
    r"""Independent standard normals, :math:`\log p(z) = -\tfrac12 \sum_i z_i^2 - \tfrac{n}{2} \log 2\pi`.

    ``sample(shape, temperature=T)`` draws from ``N(0, T^2 I)`` (Glow's reduced-temperature sampling,
    arXiv:1807.03039, §5); ``log_prob`` is always the ``T = 1`` density.

    Example:
        >>> prior = StandardGaussian()
        >>> round(prior.log_prob(torch.zeros(1, 2)).item(), 4)  # -log(2 pi)
        -1.8379
        >>> tuple(prior.sample((5, 3), generator=torch.Generator().manual_seed(0)).shape)
        (5, 3)
    """

    std = 1.0  # per dimension

    def log_prob(self, z: Tensor) -> Tensor:
        """Log-density summed over all event dims: (batch, *event) -> (batch,)."""
        _check_batch(z)
        return sum_except_batch(-0.5 * z * z - 0.5 * math.log(2 * math.pi))

    def sample(self, shape: Sequence[int], generator: torch.Generator | None = None, temperature: float = 1.0, *,
               dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> Tensor:
        """``shape`` (batch, *event) draws with standard deviation ``temperature``."""
        _check_sample_args(shape, temperature)
        device = device if device is not None else (generator.device if generator is not None else None)
        return temperature * torch.randn(tuple(shape), generator=generator, dtype=dtype, device=device)


class StandardLogistic(nn.Module):
    r"""Independent standard logistics, NICE's prior (Dinh et al., 2015, arXiv:1410.8516, §3.4):

    .. math:: \log p(z) = -\sum_i \bigl[\log(1 + e^{z_i}) + \log(1 + e^{-z_i})\bigr],

    computed with softplus so it stays finite for large ``|z|``. Its heavier tails give better-behaved
    gradients than the Gaussian's. ``sample`` draws ``T * logit(u)``, ``u ~ U(0, 1)`` (clamped away
    from 0 and 1), so ``temperature`` ``T`` scales the distribution.

    Example:
        >>> prior = StandardLogistic()
        >>> round(prior.log_prob(torch.zeros(1, 1)).item(), 4)  # log(1/4)
        -1.3863
    """

    std = math.pi / math.sqrt(3)  # per dimension

    def log_prob(self, z: Tensor) -> Tensor:
        """Log-density summed over all event dims: (batch, *event) -> (batch,)."""
        _check_batch(z)
        return sum_except_batch(-F.softplus(z) - F.softplus(-z))

    def sample(self, shape: Sequence[int], generator: torch.Generator | None = None, temperature: float = 1.0, *,
               dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> Tensor:
        """``shape`` (batch, *event) draws with scale ``temperature``."""
        _check_sample_args(shape, temperature)
        device = device if device is not None else (generator.device if generator is not None else None)
        u = torch.rand(tuple(shape), generator=generator, dtype=dtype, device=device)
        eps = torch.finfo(u.dtype).eps
        u = u.clamp(eps, 1 - eps)
        return temperature * (torch.log(u) - torch.log1p(-u))
