"""The variance-exploding path of score matching."""

from __future__ import annotations

import torch
from torch import Tensor

from .base import AffinePath, PathCoefficients


class VEPath(AffinePath):
    """Variance exploding: ``x_t = x_0 + sqrt(t) eps``, ``t`` in ``[0, sigma_max^2]``.

    The VE SDE of Song et al. (2021, arXiv:2011.13456) in EDM's parameterization
    (Karras et al., 2022, arXiv:2206.00364, Table 1): ``s(t) = 1``,
    ``sigma(t) = sqrt(t)``, so that ``d sigma^2 / dt = 1``.

    Example:
        >>> path = VEPath(sigma_max=80.0)
        >>> path.t_max
        6400.0
        >>> path.t_from_sigma(torch.tensor([3.0])).item()
        9.0
    """

    train_t_min = 1e-4  # sigma = 0.01; the velocity eps / (2 sqrt t) is singular at t = 0

    def __init__(self, sigma_max: float = 80.0):
        if sigma_max <= 0:
            raise ValueError(f"sigma_max must be positive, got {sigma_max}")
        self.sigma_max = sigma_max
        self.t_max = sigma_max**2

    def coefficients(self, t: Tensor) -> PathCoefficients:
        sigma = t.clamp_min(0).sqrt()
        return PathCoefficients(alpha=torch.ones_like(t), sigma=sigma, d_alpha=torch.zeros_like(t),
                                d_sigma=0.5 / sigma)

    def t_from_sigma(self, sigma: Tensor) -> Tensor:
        return sigma.square()
