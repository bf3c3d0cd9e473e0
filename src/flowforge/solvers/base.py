"""The shared loop of all ODE samplers.

A sampler integrates ``dx/dt = field(x, t)`` along a decreasing time grid
(``t = 1`` noise to ``t = 0`` data). A method is one subclass with a ``step``;
the loop, the function-evaluation count (NFE) and progress reporting live here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

Field = Callable[[Tensor, Tensor], Tensor]
"""``field(x, t) -> dx/dt`` with ``x`` (batch, ...) and ``t`` (batch,)."""


@dataclass(frozen=True)
class SolveResult:
    x: Tensor  # state at the last grid time, shape of the initial state
    nfe: int  # number of field evaluations spent


class _Counted:
    def __init__(self, field: Field):
        self.field, self.nfe = field, 0

    def __call__(self, x: Tensor, t: Tensor) -> Tensor:
        self.nfe += 1
        return self.field(x, t)


class Solver:
    """Base class: a fixed-grid one-step ODE method.

    Subclasses set ``name`` and ``order`` (the global order of accuracy) and
    implement :meth:`step`.
    """

    name: str = ""
    order: int = 0

    def step(self, field: Field, x: Tensor, t: float, t_next: float) -> Tensor:
        """Advance ``x`` from time ``t`` to ``t_next`` (a scalar pair)."""
        raise NotImplementedError

    @torch.no_grad()
    def solve(self, field: Field, x: Tensor, times: Tensor, progress: bool = False) -> SolveResult:
        """Integrate from ``times[0]`` to ``times[-1]``.

        Arguments:
            field: the velocity ``field(x, t)``; ``t`` is passed as a (batch,) tensor.
            x: the initial state (batch, ...), at ``times[0]``.
            times: the grid (steps + 1,), strictly monotone.
            progress: draw a progress bar with the NFE.
        """
        if times.dim() != 1 or times.numel() < 2:
            raise ValueError(f"times must be a 1-D grid of at least 2 points, got shape {tuple(times.shape)}")
        diffs = times[1:] - times[:-1]
        if not (bool((diffs > 0).all()) or bool((diffs < 0).all())):
            raise ValueError("times must be strictly monotone")
        counted = _Counted(field)
        grid = times.tolist()
        steps = range(len(grid) - 1)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(steps, desc=f"{self.name} sampling", leave=False)
            steps = bar
        for i in steps:
            x = self.step(counted, x, grid[i], grid[i + 1])
            if bar is not None:
                bar.set_postfix(nfe=counted.nfe)
        if bar is not None:
            bar.close()
        return SolveResult(x=x, nfe=counted.nfe)


def batch_time(t: float, x: Tensor) -> Tensor:
    """The scalar time ``t`` as a (batch,) tensor on ``x``'s device."""
    return torch.full((x.shape[0],), t, device=x.device, dtype=x.dtype)
