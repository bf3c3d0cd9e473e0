"""DPM-Solver++(2M): a second-order multistep solver in the data prediction."""

from __future__ import annotations

import math

from torch import Tensor

from .base import Field, Solver, StepContext, alpha_sigma, batch_time


def _half_log_snr(alpha: float, sigma: float) -> float:
    """``lambda = log(alpha_t / sigma_t)``, with the infinite ends spelled out."""
    if sigma == 0:
        return math.inf
    if alpha == 0:
        return -math.inf
    return math.log(alpha / sigma)


class DPMSolverPP2M(Solver):
    """Lu et al. (2022, arXiv:2211.01095, Algorithm 2), on any path ``x_t = alpha_t x0 + sigma_t eps``.

    With ``lambda_t = log(alpha_t / sigma_t)``, ``h_i = lambda_{i+1} - lambda_i``
    and ``D_i`` the predicted ``x0``:

    .. math:: x_{i+1} = \\frac{\\sigma_{i+1}}{\\sigma_i} x_i - \\alpha_{i+1} (e^{-h_i} - 1) \\bigl[(1 + \\tfrac{1}{2 r_i}) D_i - \\tfrac{1}{2 r_i} D_{i-1}\\bigr],
              \\quad r_i = h_{i-1} / h_i,

    first order (``D_{i-1}`` unused) on the first step and on a last step to
    ``sigma = 0``, as in the paper. One evaluation per step.
    """

    name = "dpm++2m"
    order = 2
    needs_denoiser = True

    def step(self, field: Field, x: Tensor, t: float, t_next: float, ctx: StepContext) -> Tensor:
        alpha, sigma = alpha_sigma(field, t)
        alpha_next, sigma_next = alpha_sigma(field, t_next)
        lam, lam_next = _half_log_snr(alpha, sigma), _half_log_snr(alpha_next, sigma_next)
        h = lam_next - lam
        denoised = field.denoise(x, batch_time(t, x))
        d = denoised
        h_last = ctx.memory.get("h_last")
        if h_last is not None and sigma_next > 0 and math.isfinite(h_last) and math.isfinite(h):
            r = h_last / h
            d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * ctx.memory["denoised"]
        ctx.memory.update(denoised=denoised, h_last=h)
        return (sigma_next / sigma) * x - alpha_next * math.expm1(-h) * d
