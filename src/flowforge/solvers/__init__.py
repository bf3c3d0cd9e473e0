"""Samplers: one method per file, one signature with a per-step callback, the loop in :class:`Solver`."""

from typing import Any

from .base import Field, SolveResult, Solver, StepCallback, StepContext, StepRecord, VelocityField
from .ddim import DDIM
from .ddpm import DDPMAncestral
from .dopri5 import Dopri5
from .dpm_solver import DPMSolverPP2M
from .edm_stochastic import EDMStochastic
from .euler import Euler
from .grids import GRIDS, karras_sigmas, shift_times, shifted_grid, time_grid, uniform_grid
from .heun import Heun
from .likelihood import LikelihoodResult, exact_divergence, hutchinson_divergence, ode_likelihood, rademacher
from .mean_flow import MeanFlowSampler
from .midpoint import Midpoint
from .rk4 import RK4
from .straightness import StraightnessResult, straightness

SOLVERS: dict[str, type[Solver]] = {
    "euler": Euler, "heun": Heun, "midpoint": Midpoint, "rk4": RK4, "dopri5": Dopri5,
    "edm-stochastic": EDMStochastic, "ddim": DDIM, "ddpm": DDPMAncestral, "dpm++2m": DPMSolverPP2M,
    "mean-flow": MeanFlowSampler,
}  # a new sampler is one file and one line here; the config's choices and options follow from it


def get_solver(sampler: str | Solver, **options: Any) -> Solver:
    """The sampler called ``sampler`` with its ``options`` (e.g. ``eta``, ``S_churn``, ``rtol``), or ``sampler``
    itself when it is already a :class:`Solver` instance (then its options were given to its constructor, and
    ``options`` here are an error rather than ignored).

    Example:
        >>> get_solver("ddim", eta=0.5).eta, type(get_solver(Euler())).__name__
        (0.5, 'Euler')
    """
    if isinstance(sampler, Solver):
        if options:
            raise ValueError(f"sampler {sampler.name!r} is already built: pass its options {sorted(options)} "
                             f"to its constructor, e.g. {type(sampler).__name__}(...)")
        return sampler
    if sampler not in SOLVERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of {', '.join(SOLVERS)}")
    try:
        return SOLVERS[sampler](**options)
    except TypeError as err:
        raise ValueError(f"sampler {sampler!r} does not take options {sorted(options)}: {err}") from None


__all__ = ["DDIM", "DDPMAncestral", "DPMSolverPP2M", "Dopri5", "EDMStochastic", "Euler", "Field", "GRIDS", "Heun",
           "LikelihoodResult", "MeanFlowSampler", "Midpoint", "RK4", "SOLVERS", "SolveResult", "Solver", "StepCallback",
           "StepContext", "StepRecord", "StraightnessResult", "VelocityField",
           "exact_divergence", "get_solver", "hutchinson_divergence", "karras_sigmas", "ode_likelihood",
           "rademacher", "shift_times", "shifted_grid", "straightness", "time_grid", "uniform_grid"]
