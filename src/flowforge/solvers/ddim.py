"""DDIM: the denoising diffusion implicit model's update, deterministic at ``eta = 0``."""

from __future__ import annotations

import math

from torch import Tensor

from .base import Field, Solver, StepContext, alpha_sigma, batch_time, randn_like, scale_and_sigma


class DDIM(Solver):
    """Song et al. (2021, arXiv:2010.02502, eq. 12) on any path ``x = s(t) (x0 + sigma(t) eps)``.

    With ``D`` the predicted ``x0`` and ``eps`` the implied noise at ``x_i``,
    in EDM's ``s = 1`` coordinates the update is

    .. math:: \\hat x_{i+1} = D + \\sqrt{\\sigma_{i+1}^2 - \\sigma_{up}^2}\\, \\varepsilon + \\sigma_{up} z,
              \\qquad \\sigma_{up} = \\eta\\, \\sigma_{i+1} \\sqrt{1 - \\sigma_{i+1}^2 / \\sigma_i^2},

    and ``x_{i+1} = s(t_{i+1}) \\hat x_{i+1}``. For a VP path this is DDIM's
    ``sigma_t(eta)`` exactly; ``eta = 0`` is the Euler method of the ODE in
    ``sigma`` (Karras et al., 2022, Section 4), ``eta = 1`` is DDPM's ancestral
    sampler. It never divides by ``s``, so it starts at ``alpha = 0`` (``t = 1``
    of the linear path) too.
    """

    name = "ddim"
    order = 1
    needs_denoiser = True

    def __init__(self, eta: float = 0.0):
        if eta < 0:
            raise ValueError(f"eta must be >= 0, got {eta}")
        self.eta = eta

    def step(self, field: Field, x: Tensor, t: float, t_next: float, ctx: StepContext) -> Tensor:
        alpha, sigma_t = alpha_sigma(field, t)
        _, sigma_cur = scale_and_sigma(field, t)
        s_next, sigma_next = scale_and_sigma(field, t_next)
        denoised = field.denoise(x, batch_time(t, x))
        eps = (x - alpha * denoised) / sigma_t
        ratio2 = (sigma_next / sigma_cur) ** 2 if math.isfinite(sigma_cur) else 0.0
        sigma_up = min(self.eta * sigma_next * math.sqrt(max(1.0 - ratio2, 0.0)), sigma_next)
        sigma_down = math.sqrt(sigma_next**2 - sigma_up**2)
        x_next = denoised + sigma_down * eps
        if sigma_up > 0:
            x_next = x_next + sigma_up * randn_like(x, ctx.generator)
        return s_next * x_next
