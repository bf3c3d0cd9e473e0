"""The linear path of rectified flow and (OT) flow matching."""

from __future__ import annotations

import torch
from torch import Tensor

from .base import AffinePath, PathCoefficients


class LinearPath(AffinePath):
    """Straight line between data and noise.

    .. math:: x_t = (1 - t) x_0 + (\\sigma_{min} + (1 - \\sigma_{min}) t) \\varepsilon, \\qquad
              \\frac{dx_t}{dt} = (1 - \\sigma_{min}) \\varepsilon - x_0.

    With ``sigma_min = 0`` this is the rectified-flow interpolation (Liu et al.,
    2022, arXiv:2209.03003, eq. 1); with ``sigma_min > 0`` it is the conditional
    OT path of flow matching (Lipman et al., 2023, arXiv:2210.02747, eq. 20, with
    time reversed so that ``t = 0`` is data). In EDM notation ``s(t) = 1 - t`` and
    ``sigma(t) = (sigma_min + (1 - sigma_min) t) / (1 - t)``.

    Example:
        >>> path = LinearPath()
        >>> c = path.coefficients(torch.tensor([0.25]))
        >>> (c.alpha.item(), c.sigma.item(), c.d_alpha.item(), c.d_sigma.item())
        (0.75, 0.25, -1.0, 1.0)
        >>> path.t_from_sigma(torch.tensor([1.0])).item()  # sigma(t) = t / (1 - t)
        0.5
    """

    def __init__(self, sigma_min: float = 0.0):
        if not 0.0 <= sigma_min < 1.0:
            raise ValueError(f"sigma_min must be in [0, 1), got {sigma_min}")
        self.sigma_min = sigma_min

    def coefficients(self, t: Tensor) -> PathCoefficients:
        one = torch.ones_like(t)
        k = 1.0 - self.sigma_min
        return PathCoefficients(alpha=1 - t, sigma=self.sigma_min + k * t, d_alpha=-one, d_sigma=k * one)

    def t_from_sigma(self, sigma: Tensor) -> Tensor:
        # sigma (1 - t) = sigma_min + (1 - sigma_min) t; infinite sigma maps to t = 1
        t = (sigma - self.sigma_min) / (sigma + 1.0 - self.sigma_min)
        return torch.where(torch.isinf(sigma), torch.ones_like(sigma), t)
