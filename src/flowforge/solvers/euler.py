"""Explicit Euler: first order, one evaluation per step."""

from __future__ import annotations

from torch import Tensor

from .base import Field, Solver, StepContext, batch_time


class Euler(Solver):
    """``x_{i+1} = x_i + (t_{i+1} - t_i) f(x_i, t_i)``."""

    name = "euler"
    order = 1

    def step(self, field: Field, x: Tensor, t: float, t_next: float, ctx: StepContext) -> Tensor:
        return x + (t_next - t) * field.velocity(x, batch_time(t, x))
