"""MeanFlow's sampler: jumps along a grid with the model's average velocity, one evaluation per step."""

from __future__ import annotations

from torch import Tensor

from .base import Field, Solver, StepContext, batch_time


class MeanFlowSampler(Solver):
    """``x_r = x_t - (t - r) u(x_t, r, t)`` from each grid time ``t`` to the next ``r`` (Geng et al., 2025,
    arXiv:2505.13447, eq. 12). Exact for a perfect average velocity at any number of steps; one step from
    ``t = 1`` to ``0`` is one-step generation. Needs a model trained for it (``model.objective=mean-flow``).
    """

    name = "mean-flow"
    order = 1
    needs_mean_velocity = True

    def step(self, field: Field, x: Tensor, t: float, t_next: float, ctx: StepContext) -> Tensor:
        return x + (t_next - t) * field.mean_velocity(x, batch_time(t_next, x), batch_time(t, x))
