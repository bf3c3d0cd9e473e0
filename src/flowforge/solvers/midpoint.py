"""Explicit midpoint rule: second order, two evaluations per step."""

from __future__ import annotations

from torch import Tensor

from .base import Field, Solver, StepContext, batch_time


class Midpoint(Solver):
    """``x_{i+1} = x_i + h f(x_i + (h/2) f(x_i, t_i), t_i + h/2)`` (Hairer et al., Solving ODEs I, II.1)."""

    name = "midpoint"
    order = 2

    def step(self, field: Field, x: Tensor, t: float, t_next: float, ctx: StepContext) -> Tensor:
        h = t_next - t
        x_mid = x + 0.5 * h * field.velocity(x, batch_time(t, x))
        return x + h * field.velocity(x_mid, batch_time(t + 0.5 * h, x))
