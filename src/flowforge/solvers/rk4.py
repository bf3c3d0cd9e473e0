"""The classical fourth-order Runge-Kutta method: four evaluations per step."""

from __future__ import annotations

from torch import Tensor

from .base import Field, Solver, StepContext, batch_time


class RK4(Solver):
    """Kutta's 1901 scheme: ``x_{i+1} = x_i + h (k_1 + 2 k_2 + 2 k_3 + k_4) / 6``.

    The last stage evaluates the field at ``t_{i+1}``; on a step ending at
    ``sigma = 0`` a denoiser-built field is evaluated at its smallest noise level
    instead (see :class:`flowforge.models.field.PathField`).
    """

    name = "rk4"
    order = 4

    def step(self, field: Field, x: Tensor, t: float, t_next: float, ctx: StepContext) -> Tensor:
        h = t_next - t
        k1 = field.velocity(x, batch_time(t, x))
        k2 = field.velocity(x + 0.5 * h * k1, batch_time(t + 0.5 * h, x))
        k3 = field.velocity(x + 0.5 * h * k2, batch_time(t + 0.5 * h, x))
        k4 = field.velocity(x + h * k3, batch_time(t_next, x))
        return x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
