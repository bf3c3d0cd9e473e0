"""Common types of all noising paths.

Every path in flowforge is affine in data and noise,

.. math:: x_t = \\alpha_t x_0 + \\sigma_t \\varepsilon, \\qquad t \\in [0, 1],

with ``t = 0`` the data and ``t = 1`` the noise. In EDM's notation
(Karras et al., 2022, arXiv:2206.00364, eq. 4 ff.) the same process reads
``x_t = s(t) (x_0 + sigma(t) eps)`` with ``s = alpha_t`` and ``sigma = sigma_t / alpha_t``.
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


@dataclass(frozen=True)
class PathSample:
    """A point on the conditional path between ``x0`` and ``noise`` at time ``t``.

    ``x_t`` and ``dx_t`` have the shape of ``x0``; ``t`` has shape ``(batch,)``.
    ``dx_t`` is the conditional velocity ``d x_t / dt``, the regression target of
    flow matching (Lipman et al., 2023, arXiv:2210.02747, eq. 21).
    """

    x0: Tensor
    noise: Tensor
    t: Tensor
    x_t: Tensor
    dx_t: Tensor


def expand_like(t: Tensor, x: Tensor) -> Tensor:
    """Reshape a per-example ``t`` of shape ``(batch,)`` to broadcast against ``x`` of shape ``(batch, ...)``."""
    return t.reshape(t.shape[0], *([1] * (x.dim() - 1)))


class AffinePath:
    """Base class of ``x_t = alpha_t x0 + sigma_t eps``; subclasses define :meth:`coefficients`."""

    def coefficients(self, t: Tensor) -> PathCoefficients:
        raise NotImplementedError

    def sample(self, x0: Tensor, noise: Tensor, t: Tensor) -> PathSample:
        """Noise ``x0`` (batch, ...) with ``noise`` (same shape) at times ``t`` (batch,)."""
        if noise.shape != x0.shape:
            raise ValueError(f"noise has shape {tuple(noise.shape)}, expected the shape of x0 {tuple(x0.shape)}")
        if t.shape != x0.shape[:1]:
            raise ValueError(f"t has shape {tuple(t.shape)}, expected ({x0.shape[0]},): one time per example")
        c = self.coefficients(expand_like(t, x0))
        x_t = c.alpha * x0 + c.sigma * noise
        dx_t = c.d_alpha * x0 + c.d_sigma * noise
        return PathSample(x0=x0, noise=noise, t=t, x_t=x_t, dx_t=dx_t)

    def prior_sample(self, shape: tuple[int, ...], generator: torch.Generator | None = None, **kwargs) -> Tensor:
        """Draw ``x_1`` (the state at ``t = 1``); a standard Gaussian unless a path says otherwise."""
        return torch.randn(shape, generator=generator, **kwargs)
