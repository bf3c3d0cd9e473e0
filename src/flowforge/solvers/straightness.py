"""Straightness of a probability-flow ODE: how far its paths are from straight lines.

Liu et al. (2022, arXiv:2209.03003, Definition 3.5) measure a flow ``dx_t/dt = v(x_t, t)`` by

.. math:: S = \\int_0^1 \\mathbb E \\lVert (x_1 - x_0) - v(x_t, t) \\rVert^2 \\, dt,

zero exactly when every path is a straight line run at constant speed, which one Euler step then
integrates without error; reflow lowers it. Here it is reported per dimension (divided by ``D``) so
that numbers compare across data sets, and averaged over the time interval of the integration
(``|t_0 - t_K|``: the integral itself on the linear path's unit interval).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from .base import batch_time
from .rk4 import RK4

Velocity = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class StraightnessResult:
    value: float  # S per dimension
    stderr: float  # its standard error over the paths, the sampling spread only (NaN for a single path)
    x_end: Tensor  # (batch, ...) the state at the grid's last time (the samples, for a noise-to-data grid)
    nfe: int  # velocity evaluations


@torch.no_grad()
def straightness(velocity: Velocity, x: Tensor, times: Tensor) -> StraightnessResult:
    """``S`` of the ODE ``dx/dt = velocity(x, t)`` integrated from ``x`` (batch, ...) at ``times[0]`` along
    ``times`` (steps + 1,) with classical Runge-Kutta 4 (4 evaluations per step, one more at the end).

    The velocities at the grid times enter the time integral by the trapezoid rule: each step's first
    evaluation, which the :class:`~flowforge.solvers.RK4` solver reports to a callback, and one at the end. The
    displacement is that of the whole integration, ``(x_end - x_start) / (t_end - t_start)`` per unit time, so
    the sign convention of the direction of integration cancels. Only running sums are kept:
    ``sum_k w_k |v_k - c|^2 = sum_k w_k |v_k|^2 - 2 c . sum_k w_k v_k + |c|^2 sum_k w_k`` for the chord ``c``,
    known only at the end.

    Example: a straight flow (constant velocity) has ``S = 0``::

        >>> import torch
        >>> s = straightness(lambda x, t: torch.ones_like(x), torch.zeros(4, 2), torch.linspace(1, 0, 5))
        >>> round(s.value, 12), s.nfe
        (0.0, 17)
    """
    grid = times.tolist()
    if len(grid) < 2:
        raise ValueError(f"times must hold at least 2 points, got {len(grid)}")
    widths = [abs(b - a) for a, b in zip(grid[:-1], grid[1:])]
    weights = [0.5 * (left + right) for left, right in zip([0.0, *widths], [*widths, 0.0])]  # trapezoid, (K + 1,)
    sums = _WeightedSpeeds(x)
    solved = RK4().solve(velocity, x, times, callback=lambda step: sums.add(step.prediction, weights[step.index]))
    x_end = solved.x
    sums.add(velocity(x_end, batch_time(grid[-1], x_end)), weights[-1])
    span = grid[-1] - grid[0]
    chord = ((x_end - x) / span).double()  # the straight line's constant velocity
    integral = (sums.sq - 2 * (chord * sums.weighted).flatten(1).mean(1)
                + chord.flatten(1).square().mean(1) * sum(weights))  # (batch,)
    per_path = integral / abs(span)
    stderr = float(per_path.std() / len(per_path) ** 0.5) if len(per_path) > 1 else float("nan")
    return StraightnessResult(value=float(per_path.mean()), stderr=stderr, x_end=x_end, nfe=solved.nfe + 1)


class _WeightedSpeeds:
    """The running sums ``sum_k w_k |v_k|^2 / D`` (batch,) and ``sum_k w_k v_k`` (batch, ...), in float64."""

    def __init__(self, x: Tensor):
        self.sq = torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)  # (batch,)
        self.weighted = torch.zeros_like(x, dtype=torch.float64)  # (batch, ...)

    def add(self, speed: Tensor, w: float) -> None:
        self.sq = self.sq + w * speed.double().flatten(1).square().mean(1)
        self.weighted = self.weighted + w * speed.double()
