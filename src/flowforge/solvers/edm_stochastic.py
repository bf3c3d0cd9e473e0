"""EDM's stochastic sampler: Heun steps with Langevin-like "churn"."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .base import Field, Solver, StepContext, batch_time, randn_like, scale_and_sigma


class EDMStochastic(Solver):
    """Karras et al. (2022, arXiv:2206.00364), Algorithm 2, on any path ``x = s(t) (x0 + sigma(t) eps)``.

    Each step first raises the noise level from ``sigma_i`` to
    ``sigma_hat = (1 + gamma_i) sigma_i`` by adding fresh noise, with
    ``gamma_i = min(S_churn / N, sqrt(2) - 1)`` for ``sigma_i`` in
    ``[S_tmin, S_tmax]`` and 0 elsewhere, then takes a Heun step of the
    probability-flow ODE from ``sigma_hat`` to ``sigma_{i+1}`` (Euler on the last
    step to ``sigma = 0``). ``S_churn = 0`` is Algorithm 1. The algorithm is
    written for ``s = 1``; on another path the state is rescaled by ``s(t)``
    around each step, which is the same process (EDM eq. 4).

    Arguments:
        S_churn: total amount of stochasticity (EDM's ImageNet-64 setting: 40 for 256 steps).
        S_tmin, S_tmax: range of noise levels where churn is applied.
        S_noise: standard deviation of the added noise, slightly above 1 to offset the denoiser's bias.
    """

    name = "edm-stochastic"
    order = 0  # stochastic; with S_churn = 0 it is Heun's second-order method
    needs_denoiser = True
    finite_start = True  # works in EDM's sigma, which is infinite at the linear path's t = 1

    def __init__(self, S_churn: float = 0.0, S_tmin: float = 0.0, S_tmax: float = float("inf"),
                 S_noise: float = 1.0):
        if S_churn < 0 or S_noise < 0 or S_tmin > S_tmax:
            raise ValueError(f"need S_churn >= 0, S_noise >= 0 and S_tmin <= S_tmax; got {S_churn}, {S_noise}, "
                             f"[{S_tmin}, {S_tmax}]")
        self.S_churn, self.S_tmin, self.S_tmax, self.S_noise = S_churn, S_tmin, S_tmax, S_noise

    def step(self, field: Field, x: Tensor, t: float, t_next: float, ctx: StepContext) -> Tensor:
        s_cur, sigma_cur = scale_and_sigma(field, t)
        s_next, sigma_next = scale_and_sigma(field, t_next)
        if not math.isfinite(sigma_cur):
            raise ValueError(f"{self.name} works in EDM's sigma and cannot start at infinite noise (t = {t}); "
                             f"start the grid at a finite sigma_max, e.g. grid='karras'")
        n_steps = len(ctx.times) - 1
        gamma = min(self.S_churn / n_steps, math.sqrt(2) - 1) if self.S_tmin <= sigma_cur <= self.S_tmax else 0.0
        # Increase noise temporarily: sigma_hat = sigma_i + gamma sigma_i, in the path's own coordinates.
        sigma_hat, t_hat, x_hat = sigma_cur, t, x
        if gamma > 0:
            sigma_hat = sigma_cur * (1 + gamma)
            t_hat = float(field.t_from_sigma(torch.tensor(sigma_hat, dtype=torch.float64)))
            s_hat, _ = scale_and_sigma(field, t_hat)
            noise = randn_like(x, ctx.generator) * self.S_noise
            x_hat = s_hat * (x / s_cur + math.sqrt(sigma_hat**2 - sigma_cur**2) * noise)
        else:
            s_hat = s_cur
        # Euler step from sigma_hat to sigma_{i+1}: d_cur = (x_hat - D) / sigma_hat in s = 1 coordinates.
        denoised = field.denoise(x_hat, batch_time(t_hat, x))
        d_cur = (x_hat / s_hat - denoised) / sigma_hat
        x_next_hat = x_hat / s_hat + (sigma_next - sigma_hat) * d_cur
        if sigma_next > 0:  # second-order correction
            denoised_next = field.denoise(s_next * x_next_hat, batch_time(t_next, x))
            d_prime = (x_next_hat - denoised_next) / sigma_next
            x_next_hat = x_hat / s_hat + (sigma_next - sigma_hat) * (0.5 * d_cur + 0.5 * d_prime)
        return s_next * x_next_hat
