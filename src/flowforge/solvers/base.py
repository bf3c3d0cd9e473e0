"""The shared loop of all samplers.

A sampler moves a state along a decreasing time grid, from noise (large ``t``)
to data (``t = 0``), on a :class:`Field`: the model's view of one noising path
``x_t = alpha_t x0 + sigma_t eps``. ODE methods use ``field.velocity``;
diffusion methods (DDIM, DPM-Solver++, EDM's stochastic sampler) use
``field.denoise`` and the path's coefficients. A method is one subclass with a
``step``; the loop, the function-evaluation count (NFE) and progress live here.

Every sampler has the same signature: ``solve(field, x, times, progress=...,
generator=..., callback=...)``. Options specific to a method (``eta``, ``S_churn``, ...) are
constructor arguments, and a method declares what it needs of the field and the
grid as class attributes; the configuration, the CLI and the models read those
declarations instead of keeping lists of their own.

``callback`` (k-diffusion's pattern, typed) is called after every step with a
:class:`StepRecord`: the step's times, the state before and after it, and the
model's prediction at its start. Previews, trajectories, progress bars and
measurements of the path (:func:`~flowforge.solvers.straightness`) are callbacks,
never copies of a sampler's loop.
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
    """Counts model evaluations (NFE) of a field, and keeps the first evaluation since :meth:`reset`.

    Every method evaluates the model first at its step's start, so ``first`` is the step's prediction
    (``(target, output)``: ``velocity``, ``x0`` or ``mean-velocity``) that the base loop reports to a callback.
    """

    def __init__(self, field: Field):
        self.field, self.nfe = field, 0
        self.finite_at_zero = field.finite_at_zero
        self.first: tuple[str, Tensor] | None = None

    def reset(self) -> None:
        """Forget the first evaluation: the next one is the next step's prediction."""
        self.first = None

    def _seen(self, target: str, output: Tensor) -> Tensor:
        self.nfe += 1
        if self.first is None:
            self.first = (target, output)
        return output

    def velocity(self, x: Tensor, t: Tensor) -> Tensor:
        return self._seen("velocity", self.field.velocity(x, t))

    def denoise(self, x: Tensor, t: Tensor) -> Tensor:
        return self._seen("x0", self.field.denoise(x, t))

    def mean_velocity(self, x: Tensor, r: Tensor, t: Tensor) -> Tensor:
        return self._seen("mean-velocity", self.field.mean_velocity(x, r, t))

    def coefficients(self, t: Tensor) -> Coefficients:
        return self.field.coefficients(t)

    def t_from_sigma(self, sigma: Tensor) -> Tensor:
        return self.field.t_from_sigma(sigma)


@dataclass(frozen=True)
class SolveResult:
    x: Tensor  # state at the last grid time, shape of the initial state
    nfe: int  # number of model evaluations spent


@dataclass(frozen=True)
class StepRecord:
    """One step of a sampler, as its ``callback`` sees it (k-diffusion's ``callback`` dict, typed).

    ``prediction`` is the model's output at the step's first evaluation, which every method makes at the
    step's start ``(x, t)``: the velocity for the ODE methods, the denoised ``x0`` for the diffusion methods,
    the average velocity ``u(x, t_next, t)`` for MeanFlow; ``target`` names which. EDM's stochastic sampler
    first raises the noise level, so its prediction is ``D(x_hat, t_hat)`` at the churned point, as
    k-diffusion reports it. An adaptive method reports its accepted steps (:class:`~flowforge.solvers.Dopri5`).
    """

    index: int  # the step: from times[index] to times[index + 1] (adaptive: the count of accepted steps)
    t: float  # the step's start time
    t_next: float  # its end time
    x: Tensor  # (batch, ...) the state at t
    x_next: Tensor  # (batch, ...) the state at t_next
    prediction: Tensor | None  # (batch, ...) the model's output at the step's start (None: no evaluation)
    target: str  # what prediction is: "velocity", "x0" or "mean-velocity" ("" without one)
    nfe: int  # model evaluations so far, this step's included


StepCallback = Callable[[StepRecord], None]


class ProgressBar:
    """A callback drawing a progress bar with the NFE (``total``: the steps, None when adaptive)."""

    def __init__(self, name: str, total: int | None):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, desc=f"{name} sampling", leave=False)

    def __call__(self, record: StepRecord) -> None:
        self.bar.update(1)
        self.bar.set_postfix(nfe=record.nfe)

    def close(self) -> None:
        self.bar.close()


def chain(*callbacks: StepCallback | None) -> StepCallback | None:
    """One callback calling each of ``callbacks`` that is not None, in order (None when none is left)."""
    live = [c for c in callbacks if c is not None]
    if len(live) < 2:
        return live[0] if live else None

    def each(record: StepRecord) -> None:
        for c in live:
            c(record)

    return each


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

    def checked_field(self, field: Field | Callable[[Tensor, Tensor], Tensor]) -> Field:
        """``field`` as a :class:`Field` (a bare function is a :class:`VelocityField`), if it offers what this
        method needs; a clear ``ValueError`` if not."""
        field = field if hasattr(field, "velocity") else VelocityField(field)
        if self.needs_denoiser and isinstance(field, VelocityField):
            raise ValueError(f"sampler {self.name!r} needs a denoiser on a noising path; a bare velocity function "
                             f"supports only the samplers with needs_denoiser = False")
        if self.needs_mean_velocity and not hasattr(field, "mean_velocity"):
            raise ValueError(f"sampler {self.name!r} needs a model's average velocity u(x, r, t) (MeanFlow); a bare "
                             f"velocity function has none: use an ODE sampler such as euler")
        return field

    @torch.no_grad()
    def solve(self, field: Field | Callable[[Tensor, Tensor], Tensor], x: Tensor, times: Tensor,
              progress: bool = False, generator: torch.Generator | None = None,
              callback: StepCallback | None = None) -> SolveResult:
        """Integrate from ``times[0]`` to ``times[-1]``.

        Arguments:
            field: a :class:`Field`, or a bare velocity function ``f(x, t)``.
            x: the initial state (batch, ...), at ``times[0]``.
            times: the grid (steps + 1,), strictly monotone.
            progress: draw a progress bar with the NFE.
            generator: randomness of stochastic samplers.
            callback: called after each step with its :class:`StepRecord` (a fixed-grid method: exactly
                ``steps`` times, at the grid's times in order).
        """
        self.check_grid(times)
        counted = CountedField(self.checked_field(field))
        bar = ProgressBar(self.name, len(times) - 1 if self.fixed_grid else None) if progress else None
        try:
            x = self.integrate(counted, x, times, generator, chain(callback, bar))
        finally:
            if bar is not None:
                bar.close()
        return SolveResult(x=x, nfe=counted.nfe)

    def integrate(self, field: CountedField, x: Tensor, times: Tensor, generator: torch.Generator | None,
                  callback: StepCallback | None) -> Tensor:
        """Take :meth:`step` along the grid, reporting each step to ``callback``; the state at ``times[-1]``.

        An adaptive method overrides this (it chooses its own steps; the grid gives only its ends).
        """
        grid = times.tolist()
        ctx = StepContext(index=0, times=grid, generator=generator)
        for i in range(len(grid) - 1):
            ctx.index = i
            field.reset()
            x_next = self.step(field, x, grid[i], grid[i + 1], ctx)
            if callback is not None:
                target, prediction = field.first or ("", None)
                callback(StepRecord(index=i, t=grid[i], t_next=grid[i + 1], x=x, x_next=x_next,
                                    prediction=prediction, target=target, nfe=field.nfe))
            x = x_next
        field.reset()  # no reference to the last prediction outlives the loop
        return x


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
