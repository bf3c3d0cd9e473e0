"""EDM's path: time is the noise level."""

from __future__ import annotations

import torch
from torch import Tensor

from .base import AffinePath, PathCoefficients


class EDMPath(AffinePath):
    """``x_t = x_0 + t eps``, ``t = sigma`` in ``[0, sigma_max]``.

    The choice of Karras et al. (2022, arXiv:2206.00364, Section 3): ``s(t) = 1``
    and ``sigma(t) = t``, which makes the probability-flow ODE
    ``dx/dsigma = (x - D(x; sigma)) / sigma`` (eq. 3) and, of all schedules, the
    one whose trajectories are closest to straight near the data.

    Example:
        >>> EDMPath().edm_sigma(torch.tensor([2.5])).item()
        2.5
    """

    train_t_min = 2e-3  # EDM's sigma_min

    def __init__(self, sigma_max: float = 80.0):
        if sigma_max <= 0:
            raise ValueError(f"sigma_max must be positive, got {sigma_max}")
        self.sigma_max = self.t_max = sigma_max

    def coefficients(self, t: Tensor) -> PathCoefficients:
        return PathCoefficients(alpha=torch.ones_like(t), sigma=t, d_alpha=torch.zeros_like(t),
                                d_sigma=torch.ones_like(t))

    def t_from_sigma(self, sigma: Tensor) -> Tensor:
        return sigma.clone()
