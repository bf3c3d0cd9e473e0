"""A trained model seen along any path: the :class:`~flowforge.solvers.Field` the samplers integrate."""

from __future__ import annotations

from functools import cached_property

import torch
from torch import Tensor

from ..paths import AffinePath, PathCoefficients, expand_like
from .conditioning import Conditioning


class PathField:
    """The model's prediction as a field on ``path`` (default: the path it was trained on).

    Every affine path is ``x_t = s(t) (x0 + sigma(t) eps)`` (Karras et al., 2022,
    arXiv:2206.00364, eq. 4), so a model trained on path ``P`` gives the
    denoiser on another path ``Q``: at ``(x, t)`` on ``Q``, find the time
    ``t_P`` with the same noise level ``sigma_Q(t) = sigma_P(t_P)``, rescale
    ``x`` by ``s_P(t_P) / s_Q(t)``, and ask the model for ``E[x0 | x]``. The
    velocity of ``Q``'s probability-flow ODE is then ``d_alpha x0 + d_sigma eps``.

    A field built from a denoiser cannot be evaluated at ``sigma = 0`` (the
    implied ``eps = (x - alpha x0) / sigma`` is 0/0): such evaluations use the
    time of noise level ``sigma_floor`` instead (EDM's ``sigma_min = 0.002``).

    Arguments:
        model: a :class:`~flowforge.models.ContinuousFlow`.
        path: the path whose ODE to integrate; None for the model's own.
        cond: the labels and guidance weight, as checked once per run by
            :meth:`ContinuousFlow.conditioning` (default: no label, no guidance); the field itself reads
            nothing back to the host per step.
    """

    def __init__(self, model, path: AffinePath | None = None, cond: Conditioning = Conditioning(),
                 sigma_floor: float = 2e-3):
        self.model, self.cond = model, cond
        # an equal path object (same class and parameters) is the model's own path, not another one
        self.same_path = path is None or path is model.path or (
            type(path) is type(model.path) and vars(path) == vars(model.path))
        self.path = model.path if path is None else path
        self.finite_at_zero = self.same_path and model.predicts_velocity
        self.sigma_floor = sigma_floor

    def coefficients(self, t: Tensor) -> PathCoefficients:
        return self.path.coefficients(t)

    def t_from_sigma(self, sigma: Tensor) -> Tensor:
        return self.path.t_from_sigma(sigma)

    @cached_property
    def _t_floor(self) -> float:
        """The time of noise level ``sigma_floor`` on this path (computed once, only for fields that floor)."""
        return float(self.path.t_from_sigma(torch.tensor(self.sigma_floor, dtype=torch.float64)))

    def _floor(self, t: Tensor) -> Tensor:
        """Times at noise level 0 moved to the noise level ``sigma_floor``."""
        at_zero = (t <= 0) | (self.path.coefficients(t).sigma == 0)
        return torch.where(at_zero, torch.full_like(t, self._t_floor), t)  # no host read: no sync per step

    def x0_eps(self, x: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """``(E[x0 | x_t], E[eps | x_t])`` in this path's coordinates; ``x`` (B, ...), ``t`` (B,)."""
        if self.same_path:
            return self.model.guided_x0_eps(x, t, self.cond)
        c = self.path.coefficients(expand_like(t, x))
        sigma = (c.sigma / c.alpha).flatten()  # (B,) EDM noise level
        # Noise levels outside the model's own range (below a LinearPath's sigma_min, above its top) are
        # asked at the nearest end of that range.
        model_path = self.model.path
        t_model = model_path.t_from_sigma(sigma.double()).clamp(0.0, model_path.t_max).to(t.dtype)  # (B,)
        c_model = model_path.coefficients(expand_like(t_model, x))
        x_model = x * (c_model.alpha / c.alpha)  # the same point in the model's coordinates
        x0, _ = self.model.guided_x0_eps(x_model, t_model, self.cond)
        return x0, (x - c.alpha * x0) / c.sigma

    def denoise(self, x: Tensor, t: Tensor) -> Tensor:
        return self.x0_eps(x, t)[0]

    def mean_velocity(self, x: Tensor, r: Tensor, t: Tensor) -> Tensor:
        """A MeanFlow model's average velocity over ``[r, t]`` on its own path (B, ...)."""
        if not self.same_path:
            raise ValueError("the mean-flow sampler moves along the path the model was trained on; it cannot "
                             "integrate another path's ODE (drop sample.path, or use an ODE sampler)")
        return self.model.mean_velocity(x, r, t, self.cond)

    def velocity(self, x: Tensor, t: Tensor) -> Tensor:
        # adaptive solvers (torchdiffeq) evaluate stages past the end of the interval; the path stops at [0, t_max]
        t = t.clamp(0.0, self.path.t_max)
        if self.finite_at_zero:
            return self.model.convert(self.model.guided_output(x, t, self.cond), x, t, "velocity")
        t = self._floor(t)
        x0, eps = self.x0_eps(x, t)
        c = self.path.coefficients(expand_like(t, x))
        return c.d_alpha * x0 + c.d_sigma * eps
