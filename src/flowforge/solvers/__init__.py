"""ODE samplers: one method per file, one signature, the loop in :class:`Solver`."""

from .base import Field, SolveResult, Solver
from .euler import Euler
from .grids import uniform_grid
from .heun import Heun

SOLVERS: dict[str, type[Solver]] = {"euler": Euler, "heun": Heun}


def get_solver(name: str) -> Solver:
    """Instantiate the sampler called ``name``; the error lists the valid names."""
    if name not in SOLVERS:
        raise ValueError(f"unknown sampler {name!r}; choose one of {', '.join(SOLVERS)}")
    return SOLVERS[name]()


__all__ = ["Euler", "Field", "Heun", "SOLVERS", "SolveResult", "Solver", "get_solver", "uniform_grid"]
