"""Time and noise-level grids for the samplers (float64, from noise to data)."""

from __future__ import annotations

import math
from typing import Protocol

import torch
from torch import Tensor

GRIDS = ("uniform", "karras", "shifted")  # the choices of :func:`time_grid`


class GridPath(Protocol):
    """What a grid needs of a path: its time domain and the map between time and EDM's noise level."""

    t_max: float

    def sigma_range(self) -> tuple[float, float]: ...

    def t_from_sigma(self, sigma: Tensor) -> Tensor: ...


def _check_steps(steps: int) -> None:
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")


def uniform_grid(steps: int, t_start: float = 1.0, t_end: float = 0.0) -> Tensor:
    """``steps + 1`` evenly spaced times from ``t_start`` (noise) to ``t_end`` (data)."""
    _check_steps(steps)
    return torch.linspace(t_start, t_end, steps + 1, dtype=torch.float64)


def karras_sigmas(steps: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0) -> Tensor:
    """EDM's noise levels (Karras et al., 2022, arXiv:2206.00364, eq. 5), then ``sigma = 0``: (steps + 1,).

    .. math:: \\sigma_i = \\bigl(\\sigma_{max}^{1/\\rho} + \\tfrac{i}{N-1}(\\sigma_{min}^{1/\\rho} - \\sigma_{max}^{1/\\rho})\\bigr)^\\rho,
              \\quad i < N, \\qquad \\sigma_N = 0.

    ``rho = 7`` spends more steps at low noise, where the ODE curves most.
    """
    _check_steps(steps)
    if not 0 < sigma_min < sigma_max:
        raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
    ramp = torch.linspace(0, 1, steps, dtype=torch.float64) if steps > 1 else torch.zeros(1, dtype=torch.float64)
    inv_rho = 1 / rho
    sigmas = (sigma_max**inv_rho + ramp * (sigma_min**inv_rho - sigma_max**inv_rho)) ** rho
    return torch.cat([sigmas, sigmas.new_zeros(1)])


def shift_times(t: Tensor, shift: float) -> Tensor:
    """SD3's resolution-dependent shift (Esser et al., 2024, arXiv:2403.03206, eq. 23).

    .. math:: t' = \\frac{s t}{1 + (s - 1) t}

    maps ``[0, 1]`` onto itself; ``s > 1`` moves time towards noise, as larger
    images need (SD3 uses ``s = sqrt(m / n)`` for ``m`` pixels against a base ``n``).
    """
    if shift <= 0:
        raise ValueError(f"shift must be positive, got {shift}")
    out = shift * t / (1 + (shift - 1) * t)
    # t = 1 maps to s / s, which rounds a hair above 1 for some s (0.44, 0.08, ...): a grid starting there would
    # give a negative alpha_t = 1 - t' on the linear path. Keep the end exact and the rest inside [0, 1].
    return torch.where(t >= 1, t, out.clamp(max=1.0))


def shifted_grid(steps: int, shift: float, t_start: float = 1.0, t_end: float = 0.0) -> Tensor:
    """A uniform grid on ``[t_end, t_start]`` passed through :func:`shift_times`."""
    return shift_times(uniform_grid(steps, t_start, t_end), shift)


def time_grid(path: GridPath, steps: int, *, grid: str | None = None, sigma_top: float = math.inf,
              sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0, shift: float = 3.0,
              finite_start: bool = False) -> Tensor:
    """Sampling times (steps + 1,) on ``path`` from noise to ``t = 0``.

    ``uniform`` in ``t``; ``karras`` (EDM eq. 5, noise levels clipped to what the
    path reaches); ``shifted`` (SD3's shift of a uniform grid). The default is
    ``karras`` when the path's noise level at ``t_max`` is finite (VE, VP, EDM)
    and ``uniform`` when it is not (the linear path), unless the sampler cannot
    start at infinite noise (``finite_start``, EDM's stochastic sampler), which
    gets ``karras`` on every path. Every grid starts at most at
    the noise level ``sigma_top`` the model can be queried at: a VP model sampled
    on the linear path's ODE starts where the linear path's noise level is VP's
    ``sigma(1)``, not at ``sigma = inf``, which the model never saw.
    """
    lo, hi = path.sigma_range()
    grid = grid or ("karras" if finite_start or math.isfinite(hi) else "uniform")
    if grid not in GRIDS:
        raise ValueError(f"unknown grid {grid!r}; choose one of {', '.join(GRIDS)}")
    if grid == "karras":
        sigmas = karras_sigmas(steps, max(sigma_min, lo + 1e-12), min(sigma_max, hi, sigma_top), rho)
        times = path.t_from_sigma(sigmas).clamp(0.0, path.t_max)
        times[-1] = 0.0
        return times
    t_start = path.t_max
    if hi > sigma_top:
        t_start = min(float(path.t_from_sigma(torch.tensor(sigma_top, dtype=torch.float64))), path.t_max)
    if grid == "uniform":
        return uniform_grid(steps, t_start, 0.0)
    return shifted_grid(steps, shift, 1.0, 0.0) * t_start
