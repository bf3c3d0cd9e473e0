"""Heun's method (explicit trapezoidal rule): second order, two evaluations per step."""

from __future__ import annotations

from torch import Tensor

from .base import Field, Solver, StepContext, batch_time


class Heun(Solver):
    """The deterministic sampler of EDM (Karras et al., 2022, arXiv:2206.00364, Algorithm 1).

    .. math::
        d_i = f(x_i, t_i), \\quad \\tilde x = x_i + h d_i, \\quad
        x_{i+1} = x_i + \\tfrac{h}{2} (d_i + f(\\tilde x, t_{i+1})), \\quad h = t_{i+1} - t_i.

    As in EDM, the correction is skipped on a step that ends at noise level
    ``sigma = 0``, where the ODE of a denoiser is singular (``(x - D) / sigma``);
    an Euler step there adds an ``O(h^2)`` local error, so the method stays
    second order.
    """

    name = "heun"
    order = 2

    def step(self, field: Field, x: Tensor, t: float, t_next: float, ctx: StepContext) -> Tensor:
        h = t_next - t
        d_cur = field.velocity(x, batch_time(t, x))
        x_next = x + h * d_cur
        if t_next == 0 and not field.finite_at_zero:
            return x_next
        d_prime = field.velocity(x_next, batch_time(t_next, x))
        return x + h * (0.5 * d_cur + 0.5 * d_prime)

