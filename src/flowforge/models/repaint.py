"""Inpainting with a continuous model: impose the known part along the path while sampling."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..solvers import StepContext, get_solver
from ..solvers.base import CountedField, alpha_sigma, randn_like
from .field import PathField


def inpaint_along_path(model, x: Tensor, mask: Tensor, *, sampler: str = "euler", steps: int = 100,
                       grid: str | None = None, grid_options: dict[str, float] | None = None, resample: int = 1,
                       generator: torch.Generator | None = None, labels: Tensor | None = None,
                       guidance: float = 1.0, **sampler_options) -> Tensor:
    """Fill ``x`` (B, ...) where ``mask`` is False; keep it where True.

    Start from noise and run ``sampler`` down the time grid; after every step
    to time ``t`` the known entries are replaced by the known data noised to
    ``t``, ``alpha_t x + sigma_t eps`` with fresh ``eps``, so the unknown part
    is generated in agreement with it (the "replacement" method of Song et al.,
    2021, arXiv:2011.13456, App. I.2, and RePaint's known-region step, Lugmayr
    et al., 2022, arXiv:2201.09865, eq. 8). With ``resample = r > 1`` each step
    is repeated ``r`` times: the state is noised back from ``t_{i+1}`` to
    ``t_i`` (``x <- (alpha_i/alpha_{i+1}) x + sqrt(sigma_i^2 - (alpha_i/alpha_{i+1})^2 sigma_{i+1}^2) z``)
    and the step redone, which lets the generated part harmonise with the
    known part (RePaint's resampling with jump length 1, Algorithm 1).
    The last step imposes ``x`` itself; for discrete data the generated entries are returned as data
    values, like :meth:`~flowforge.models.ContinuousFlow.sample`'s.
    """
    solver = get_solver(sampler, **sampler_options)
    if not solver.fixed_grid:
        raise ValueError(f"inpainting steps along a fixed grid; choose a fixed-step sampler, not {sampler}")
    if resample < 1:
        raise ValueError(f"resample must be >= 1, got {resample}")
    model.check_batch(x)
    mask = torch.as_tensor(mask, dtype=torch.bool, device=x.device).expand_as(x)
    field = CountedField(PathField(model, None, model.conditioning(labels, x.shape[0], x.device, guidance)))
    path = model.path
    times = model.time_grid(steps, grid=grid, finite_start=solver.finite_start, **(grid_options or {})).tolist()
    known = model.to_model_space(x, None)
    state = path.prior_sample(tuple(x.shape), times[0], generator=generator).to(x.device, x.dtype)
    ctx = StepContext(index=0, times=times, generator=generator)
    with torch.no_grad():
        for i in range(len(times) - 1):
            t, t_next = times[i], times[i + 1]
            alpha_i, sigma_i = alpha_sigma(field, t)
            alpha_n, sigma_n = alpha_sigma(field, t_next)
            memory = dict(ctx.memory)  # a multistep method's history before step i, the same for every repeat
            for r in range(resample):
                ctx.index = i
                ctx.memory = dict(memory)
                out = solver.step(field, state, t, t_next, ctx)
                noised_known = alpha_n * known + sigma_n * randn_like(known, generator)
                out = torch.where(mask, noised_known, out)
                if r == resample - 1 or t_next == 0:
                    state = out
                    break
                ratio = alpha_i / alpha_n  # noise back from t_next to t
                state = ratio * out + math.sqrt(max(sigma_i**2 - ratio**2 * sigma_n**2, 0.0)) * randn_like(out, generator)
    return torch.where(mask, x, model.from_model_space(state))  # generated entries on the data's levels too

