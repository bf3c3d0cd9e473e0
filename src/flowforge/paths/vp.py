"""Variance-preserving paths of DDPM: linear-beta and cosine schedules."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .base import AffinePath, PathCoefficients


class VPPath(AffinePath):
    """Variance preserving: ``x_t = alpha_t x_0 + sqrt(1 - alpha_t^2) eps``, ``t`` in ``[0, 1]``.

    ``schedule="linear"`` is DDPM's linear beta schedule in continuous time
    (Ho et al., 2020, arXiv:2006.11239; Song et al., 2021, arXiv:2011.13456,
    eq. 33), with beta(t) = beta_min + t (beta_max - beta_min):

    .. math:: \\alpha_t = \\exp(-\\tfrac14 \\beta_d t^2 - \\tfrac12 \\beta_{min} t), \\qquad \\beta_d = \\beta_{max} - \\beta_{min},

    which EDM writes as ``sigma(t) = sqrt(exp(beta_d t^2 / 2 + beta_min t) - 1)``
    (Karras et al., 2022, arXiv:2206.00364, Table 1). ``schedule="cosine"`` is
    the schedule of Nichol & Dhariwal (2021, arXiv:2102.09672, eq. 17),
    ``alpha_t = cos((t + s) / (1 + s) pi / 2) / cos(s / (1 + s) pi / 2)``, whose
    ``alpha_1 = 0``.

    Example:
        >>> path = VPPath("linear")
        >>> c = path.coefficients(torch.tensor([0.5], dtype=torch.float64))
        >>> round((c.alpha**2 + c.sigma**2).item(), 12)
        1.0
        >>> round(path.t_from_sigma(c.edm_sigma).item(), 9)
        0.5
    """

    train_t_min = 1e-5  # Song et al.'s epsilon: sigma_t -> 0 makes eps and score targets ill-posed

    def __init__(self, schedule: str = "linear", beta_min: float = 0.1, beta_max: float = 20.0,
                 cosine_s: float = 0.008):
        if schedule not in ("linear", "cosine"):
            raise ValueError(f"schedule must be 'linear' or 'cosine', got {schedule!r}")
        if not 0 <= beta_min < beta_max:
            raise ValueError(f"need 0 <= beta_min < beta_max, got {beta_min}, {beta_max}")
        self.schedule, self.beta_min, self.beta_max, self.cosine_s = schedule, beta_min, beta_max, cosine_s

    @property
    def _theta_0(self) -> float:
        """The cosine schedule's angle at ``t = 0``, ``s / (1 + s) pi / 2``."""
        return self.cosine_s / (1 + self.cosine_s) * math.pi / 2

    def _log_alpha(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """``log alpha_t`` and its derivative."""
        if self.schedule == "linear":
            beta_d = self.beta_max - self.beta_min
            return -0.25 * beta_d * t**2 - 0.5 * self.beta_min * t, -0.5 * beta_d * t - 0.5 * self.beta_min
        s = self.cosine_s
        theta = (t + s) / (1 + s) * math.pi / 2
        log_alpha = torch.log(torch.cos(theta).clamp_min(0)) - math.log(math.cos(self._theta_0))
        return log_alpha, -torch.tan(theta) * math.pi / (2 * (1 + s))

    def coefficients(self, t: Tensor) -> PathCoefficients:
        log_alpha, d_log_alpha = self._log_alpha(t)
        alpha = log_alpha.exp()
        if self.schedule == "cosine":
            # 1 - alpha^2 = sin(theta - theta_0) sin(theta + theta_0) / cos^2 theta_0: no cancellation near t = 0,
            # where log cos theta - log cos theta_0 leaves float32 with sigma(0) = 2e-4 instead of 0
            theta_0 = self._theta_0
            gap = t / (1 + self.cosine_s) * math.pi / 2  # theta - theta_0, exactly 0 at t = 0
            sigma = (torch.sin(gap) * torch.sin(gap + 2 * theta_0)).clamp_min(0).sqrt() / math.cos(theta_0)
        else:
            sigma = (-torch.expm1(2 * log_alpha)).clamp_min(0).sqrt()  # sqrt(1 - alpha^2), accurate near t = 0
        d_alpha = alpha * d_log_alpha
        d_sigma = -alpha * d_alpha / sigma
        return PathCoefficients(alpha=alpha, sigma=sigma, d_alpha=d_alpha, d_sigma=d_sigma)

    def t_from_sigma(self, sigma: Tensor) -> Tensor:
        # alpha = 1 / sqrt(1 + sigma^2), i.e. -log alpha = log(1 + sigma^2) / 2
        neg_log_alpha = 0.5 * torch.log1p(sigma.square())
        if self.schedule == "linear":
            beta_d = self.beta_max - self.beta_min
            # beta_d t^2 / 4 + beta_min t / 2 = -log alpha, the positive root
            return (-self.beta_min + torch.sqrt(self.beta_min**2 + 4 * beta_d * neg_log_alpha)) / beta_d
        s = self.cosine_s
        cos_theta = torch.exp(-neg_log_alpha) * math.cos(self._theta_0)
        return torch.arccos(cos_theta) * 2 / math.pi * (1 + s) - s
