"""Common types of all noising paths.

Every path in flowforge is affine in data and noise,

.. math:: x_t = \\alpha_t x_0 + \\sigma_t \\varepsilon, \\qquad t \\in [0, t_{max}],

with ``t = 0`` the data and ``t_max`` the noise. In EDM's notation (Karras et
al., 2022, arXiv:2206.00364, eq. 4 ff. and Table 1) the same process reads

.. math:: x_t = s(t) \\, (x_0 + \\sigma(t) \\varepsilon), \\qquad s = \\alpha_t, \\quad \\sigma(t) = \\sigma_t / \\alpha_t,

so every path is a time change and a rescaling of one process,
``x_hat = x_0 + sigma eps``: a denoiser ``D(x_hat; sigma) = E[x_0 | x_hat]``
learnt under one path serves every other (:mod:`flowforge.models.field`).
Here ``sigma`` without subscript always means EDM's noise level ``sigma(t)``;
``PathCoefficients.sigma`` is the noise coefficient ``sigma_t`` of the
alpha/sigma form.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class PathCoefficients:
    """Coefficients of ``x_t = alpha * x0 + sigma * eps`` and their time derivatives.

    All fields are broadcastable tensors of the shape of ``t``.
    """

    alpha: Tensor
    sigma: Tensor
    d_alpha: Tensor  # d alpha / dt
    d_sigma: Tensor  # d sigma / dt

    @property
    def edm_sigma(self) -> Tensor:
        """EDM's noise level ``sigma(t) = sigma_t / alpha_t`` (infinite where ``alpha_t = 0``)."""
        return self.sigma / self.alpha

    @property
    def snr(self) -> Tensor:
        """Signal-to-noise ratio ``alpha_t^2 / sigma_t^2 = 1 / sigma(t)^2`` (Kingma et al., 2021, arXiv:2107.00630)."""
        return self.alpha.square() / self.sigma.square()


@dataclass(frozen=True)
class PathSample:
    """A point on the conditional path between ``x0`` and ``noise`` at time ``t``.

    ``x_t`` and ``dx_t`` have the shape of ``x0``; ``t`` has shape ``(batch,)``.
    ``dx_t`` is the conditional velocity ``d x_t / dt``, the regression target of
    flow matching (Lipman et al., 2023, arXiv:2210.02747, eq. 21); ``coefficients``
    are the path's at ``t``, shaped to broadcast against ``x0``.
    """

    x0: Tensor
    noise: Tensor
    t: Tensor
    x_t: Tensor
    dx_t: Tensor
    coefficients: PathCoefficients


def expand_like(t: Tensor, x: Tensor) -> Tensor:
    """Reshape a per-example ``t`` of shape ``(batch,)`` to broadcast against ``x`` of shape ``(batch, ...)``."""
    return t.reshape(t.shape[0], *([1] * (x.dim() - 1)))


class AffinePath:
    """Base class of ``x_t = alpha_t x0 + sigma_t eps``.

    Subclasses define :meth:`coefficients`, :meth:`t_from_sigma` (the inverse of
    EDM's ``sigma(t)``), the time domain ``[0, t_max]`` and ``train_t_min``, the
    smallest time drawn in training (0 unless the path is singular there).
    """

    t_max: float = 1.0
    train_t_min: float = 0.0

    def coefficients(self, t: Tensor) -> PathCoefficients:
        raise NotImplementedError

    def t_from_sigma(self, sigma: Tensor) -> Tensor:
        """The time at which EDM's noise level ``sigma_t / alpha_t`` equals ``sigma`` (inverse of ``sigma(t)``)."""
        raise NotImplementedError

    def edm_sigma(self, t: Tensor) -> Tensor:
        """EDM's ``sigma(t) = sigma_t / alpha_t``."""
        return self.coefficients(t).edm_sigma

    def sigma_range(self) -> tuple[float, float]:
        """EDM noise levels ``(sigma(0), sigma(t_max))`` covered by the path's time domain."""
        ends = self.edm_sigma(torch.tensor([0.0, self.t_max], dtype=torch.float64))
        return float(ends[0]), float(ends[1])

    def sample(self, x0: Tensor, noise: Tensor, t: Tensor) -> PathSample:
        """Noise ``x0`` (batch, ...) with ``noise`` (same shape) at times ``t`` (batch,)."""
        if noise.shape != x0.shape:
            raise ValueError(f"noise has shape {tuple(noise.shape)}, expected the shape of x0 {tuple(x0.shape)}")
        if t.shape != x0.shape[:1]:
            raise ValueError(f"t has shape {tuple(t.shape)}, expected ({x0.shape[0]},): one time per example")
        c = self.coefficients(expand_like(t, x0))
        x_t = c.alpha * x0 + c.sigma * noise
        dx_t = c.d_alpha * x0 + c.d_sigma * noise
        return PathSample(x0=x0, noise=noise, t=t, x_t=x_t, dx_t=dx_t, coefficients=c)

    def prior_sample(self, shape: tuple[int, ...], t: float | None = None,
                     generator: torch.Generator | None = None, **kwargs) -> Tensor:
        """Draw the starting state of sampling at time ``t`` (default ``t_max``): ``sigma_t eps``.

        Exact at ``t = 1`` of the linear path (``alpha = 0``); elsewhere it drops
        the data term ``alpha_t x_0``, negligible when ``sigma(t)`` is large
        (EDM starts from ``sigma_max eps`` the same way).
        """
        t = self.t_max if t is None else t
        sigma_t = float(self.coefficients(torch.tensor(t, dtype=torch.float64)).sigma)
        if generator is not None:  # drawn on the generator's device (a GPU generator draws on the GPU)
            kwargs.setdefault("device", generator.device)
        return sigma_t * torch.randn(shape, generator=generator, **kwargs)
