"""Heun's method (explicit trapezoidal rule): second order, two evaluations per step."""

from __future__ import annotations

from torch import Tensor

from .base import Field, Solver, StepContext, batch_time


LAST_STEPS = ("euler", "heun")


class Heun(Solver):
    """The deterministic sampler of EDM (Karras et al., 2022, arXiv:2206.00364, Algorithm 1).

    .. math::
        d_i = f(x_i, t_i), \\quad \\tilde x = x_i + h d_i, \\quad
        x_{i+1} = x_i + \\tfrac{h}{2} (d_i + f(\\tilde x, t_{i+1})), \\quad h = t_{i+1} - t_i.

    The last step, to ``t = 0``, is an Euler step by default, as in EDM's Algorithm 1 (line 8 corrects only
    ``if sigma_{i+1} != 0``): there the ODE of a denoiser is singular (``(x - D) / sigma``), and even a
    velocity network, finite at ``t = 0``, is least accurate at the data end of its path, so the correction
    costs more than it gains (measured: ``benchmarks/heun_last_step.py``). The Euler step adds an ``O(h^2)``
    local error once, so the method stays second order.

    Arguments:
        last_step: ``euler`` (EDM) or ``heun``, which also corrects the last step where the field is finite at
            ``t = 0`` (a velocity network on its own path; a denoiser's field always ends with Euler).
    """

    name = "heun"
    order = 2

    def __init__(self, last_step: str = "euler"):
        if last_step not in LAST_STEPS:
            raise ValueError(f"last_step must be one of {', '.join(LAST_STEPS)}, got {last_step!r}")
        self.last_step = last_step

    def step(self, field: Field, x: Tensor, t: float, t_next: float, ctx: StepContext) -> Tensor:
        h = t_next - t
        d_cur = field.velocity(x, batch_time(t, x))
        x_next = x + h * d_cur
        if t_next == 0 and (self.last_step == "euler" or not field.finite_at_zero):
            return x_next
        d_prime = field.velocity(x_next, batch_time(t_next, x))
        return x + h * (0.5 * d_cur + 0.5 * d_prime)
