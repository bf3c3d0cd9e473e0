"""The shared loop of all samplers.

A sampler moves a state along a decreasing time grid, from noise (large ``t``)
to data (``t = 0``), on a :class:`Field`: the model's view of one noising path
``x_t = alpha_t x0 + sigma_t eps``. ODE methods use ``field.velocity``;
diffusion methods (DDIM, DPM-Solver++, EDM's stochastic sampler) use
``field.denoise`` and the path's coefficients. A method is one subclass with a
``step``; the loop, the function-evaluation count (NFE) and progress live here.

Every sampler has the same signature: ``solve(field, x, times, progress=...,
generator=...)``. Options specific to a method (``eta``, ``S_churn``, ...) are
constructor arguments, and a method declares what it needs of the field and the
grid as class attributes; the configuration, the CLI and the models read those
declarations instead of keeping lists of their own.
"""

from __future__ import annotations

from dataclasses import dataclass, field as dataclass_field
import inspect
import math
from typing import Any, Callable, Protocol

import torch
from torch import Tensor


class Coefficients(Protocol):
    alpha: Tensor
    sigma: Tensor
    d_alpha: Tensor
    d_sigma: Tensor


class Field(Protocol):
    """What a sampler sees of a model on a path (``t`` is a (batch,) tensor, ``x`` (batch, ...)).

    ``finite_at_zero`` says whether ``velocity`` may be evaluated at ``t = 0``:
    true for a network that predicts the velocity itself, false for one built
    from a denoiser, whose ``(x - D) / sigma`` is 0/0 at ``sigma = 0``.
    """

    finite_at_zero: bool

    def velocity(self, x: Tensor, t: Tensor) -> Tensor:
        """``dx/dt`` of the probability-flow ODE."""
        ...

    def denoise(self, x: Tensor, t: Tensor) -> Tensor:
        """``E[x0 | x_t = x]``."""
        ...

    def coefficients(self, t: Tensor) -> Coefficients:
        """The path's ``alpha_t, sigma_t`` and derivatives at ``t``."""
        ...

    def t_from_sigma(self, sigma: Tensor) -> Tensor:
        """The time whose EDM noise level ``sigma_t / alpha_t`` is ``sigma``."""
        ...


class VelocityField:
    """A plain ``f(x, t) -> dx/dt`` as a :class:`Field` for the ODE methods (no path, no denoiser)."""

    finite_at_zero = True

    def __init__(self, fn: Callable[[Tensor, Tensor], Tensor]):
        self.fn = fn

    def velocity(self, x: Tensor, t: Tensor) -> Tensor:
        return self.fn(x, t)

    def _no_path(self, *args: Any) -> Tensor:
        raise ValueError("this sampler needs a model on a noising path (a denoiser and the path's coefficients); "
                         "a bare velocity function only supports the samplers with needs_denoiser = False")

    denoise = coefficients = t_from_sigma = _no_path


class CountedField:
    """Counts model evaluations (NFE) of a field."""

    def __init__(self, field: Field):
        self.field, self.nfe = field, 0
        self.finite_at_zero = field.finite_at_zero

    def velocity(self, x: Tensor, t: Tensor) -> Tensor:
        self.nfe += 1
        return self.field.velocity(x, t)

    def denoise(self, x: Tensor, t: Tensor) -> Tensor:
        self.nfe += 1
        return self.field.denoise(x, t)

    def mean_velocity(self, x: Tensor, r: Tensor, t: Tensor) -> Tensor:
        self.nfe += 1
        return self.field.mean_velocity(x, r, t)

    def coefficients(self, t: Tensor) -> Coefficients:
        return self.field.coefficients(t)

    def t_from_sigma(self, sigma: Tensor) -> Tensor:
        return self.field.t_from_sigma(sigma)


@dataclass(frozen=True)
class SolveResult:
    x: Tensor  # state at the last grid time, shape of the initial state
    nfe: int  # number of model evaluations spent


@dataclass
class StepContext:
    """What a step may know besides its two times: its index, the grid, randomness and memory."""

    index: int
    times: list[float]
    generator: torch.Generator | None = None
    memory: dict[str, Any] = dataclass_field(default_factory=dict)  # multistep methods keep history here


class Solver:
    """Base class: a method that advances a state along a time grid.

    Subclasses set ``name`` and ``order`` (global order of accuracy on a smooth
    ODE; 0 for stochastic methods), declare what they need, and implement
    :meth:`step`. Their options are the keyword arguments of their constructor
    (:meth:`option_names`).
    """

    name: str = ""
    order: int = 0
    needs_denoiser: bool = False  # uses field.denoise and the path's coefficients, not only field.velocity
    finite_start: bool = False  # cannot start at infinite noise (the linear path's t = 1): needs a karras grid
    fixed_grid: bool = True  # steps along the given grid (False: adaptive, the grid gives only its ends)
    needs_mean_velocity: bool = False  # uses field.mean_velocity(x, r, t): a model trained on average velocities

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        """The method's own options: its constructor's keyword arguments (e.g. ``eta``, ``S_churn``)."""
        params = inspect.signature(cls.__init__).parameters
        return tuple(name for name, p in params.items() if name != "self" and p.kind is p.POSITIONAL_OR_KEYWORD)

    def step(self, field: Field, x: Tensor, t: float, t_next: float, ctx: StepContext) -> Tensor:
        """Advance ``x`` from time ``t`` to ``t_next``."""
        raise NotImplementedError

    @staticmethod
    def check_grid(times: Tensor) -> None:
        if times.dim() != 1 or times.numel() < 2:
            raise ValueError(f"times must be a 1-D grid of at least 2 points, got shape {tuple(times.shape)}")
        diffs = times[1:] - times[:-1]
        if not (bool((diffs > 0).all()) or bool((diffs < 0).all())):
            raise ValueError("times must be strictly monotone")

    @torch.no_grad()
    def solve(self, field: Field | Callable[[Tensor, Tensor], Tensor], x: Tensor, times: Tensor,
              progress: bool = False, generator: torch.Generator | None = None) -> SolveResult:
        """Integrate from ``times[0]`` to ``times[-1]``.

        Arguments:
            field: a :class:`Field`, or a bare velocity function ``f(x, t)``.
            x: the initial state (batch, ...), at ``times[0]``.
            times: the grid (steps + 1,), strictly monotone.
            progress: draw a progress bar with the NFE.
            generator: randomness of stochastic samplers.
        """
        self.check_grid(times)
        field = field if hasattr(field, "velocity") else VelocityField(field)
        if self.needs_denoiser and isinstance(field, VelocityField):
            raise ValueError(f"sampler {self.name!r} needs a denoiser on a noising path; a bare velocity function "
                             f"supports only the samplers with needs_denoiser = False")
        if self.needs_mean_velocity and not hasattr(field, "mean_velocity"):
            raise ValueError(f"sampler {self.name!r} needs a model's average velocity u(x, r, t) (MeanFlow); a bare "
                             f"velocity function has none: use an ODE sampler such as euler")
        counted = CountedField(field)
        grid = times.tolist()
        ctx = StepContext(index=0, times=grid, generator=generator)
        steps = range(len(grid) - 1)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(steps, desc=f"{self.name} sampling", leave=False)
            steps = bar
        for i in steps:
            ctx.index = i
            x = self.step(counted, x, grid[i], grid[i + 1], ctx)
            if bar is not None:
                bar.set_postfix(nfe=counted.nfe)
        if bar is not None:
            bar.close()
        return SolveResult(x=x, nfe=counted.nfe)


def batch_time(t: float, x: Tensor) -> Tensor:
    """The scalar time ``t`` as a (batch,) tensor on ``x``'s device."""
    return torch.full((x.shape[0],), t, device=x.device, dtype=x.dtype)


def alpha_sigma(field: Field, t: float) -> tuple[float, float]:
    """The path's ``alpha_t`` and ``sigma_t`` at a scalar time, as floats."""
    c = field.coefficients(torch.tensor(t, dtype=torch.float64))
    return float(c.alpha), float(c.sigma)


def scale_and_sigma(field: Field, t: float) -> tuple[float, float]:
    """EDM's ``s(t) = alpha_t`` and ``sigma(t) = sigma_t / alpha_t`` at a scalar time (inf where alpha_t = 0)."""
    alpha, sigma = alpha_sigma(field, t)
    return alpha, (sigma / alpha if alpha > 0 else math.inf)


def randn_like(x: Tensor, generator: torch.Generator | None) -> Tensor:
    """Standard normal noise of ``x``'s shape drawn from ``generator`` (on its device), moved to ``x``."""
    device = generator.device if generator is not None else x.device
    return torch.randn(x.shape, generator=generator, device=device, dtype=x.dtype).to(x.device)
