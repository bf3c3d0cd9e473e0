"""The linear path of rectified flow and (OT) flow matching."""

from __future__ import annotations

import torch
from torch import Tensor

from .base import AffinePath, PathCoefficients


class LinearPath(AffinePath):
    """Straight line between data and noise.

    .. math:: x_t = (1 - t) x_0 + t \\varepsilon, \\qquad \\frac{dx_t}{dt} = \\varepsilon - x_0.

    The rectified-flow interpolation (Liu et al., 2022, arXiv:2209.03003, eq. 1) and
    the conditional OT path of flow matching with ``sigma_min = 0`` (Lipman et al.,
    2023, arXiv:2210.02747, eq. 20). In EDM notation ``s(t) = 1 - t`` and
    ``sigma(t) = t / (1 - t)``.

    Example:
        >>> path = LinearPath()
        >>> c = path.coefficients(torch.tensor([0.25]))
        >>> (c.alpha.item(), c.sigma.item(), c.d_alpha.item(), c.d_sigma.item())
        (0.75, 0.25, -1.0, 1.0)
    """

    def coefficients(self, t: Tensor) -> PathCoefficients:
        one = torch.ones_like(t)
        return PathCoefficients(alpha=1 - t, sigma=t, d_alpha=-one, d_sigma=one)
