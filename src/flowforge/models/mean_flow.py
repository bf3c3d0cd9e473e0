"""MeanFlow: training a network on the *average* velocity over an interval, for one- and few-step sampling.

Geng, Deng, Bai, Kolter & He (2025), "Mean Flows for One-step Generative Modeling", arXiv:2505.13447.
On the linear path ``z_t = (1 - t) x + t eps`` the average velocity over ``[r, t]`` is

.. math:: u(z_t, r, t) = \\frac{1}{t - r} \\int_r^t v(z_\\tau, \\tau)\\, d\\tau,

so one step ``z_r = z_t - (t - r) u(z_t, r, t)`` lands exactly where the ODE would, and ``u(z, t, t) = v(z, t)``
is the ordinary velocity. Differentiating ``(t - r) u = int_r^t v`` in ``t`` gives the MeanFlow identity

.. math:: u(z_t, r, t) = v(z_t, t) - (t - r)\\, \\frac{d}{dt} u(z_t, r, t), \\qquad
          \\frac{d}{dt} u = v\\, \\partial_z u + \\partial_t u,

whose right-hand side is the regression target (under a stop-gradient), with the total derivative computed by
one forward-mode Jacobian-vector product of the network along the tangent ``(v, 0, 1)`` in ``(z, r, t)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..paths import AffinePath
from ..rng import BatchRandom
from .time_sampling import TimeSampler


@dataclass(frozen=True)
class MeanFlow:
    """MeanFlow's training settings (defaults: the paper's best ImageNet ablations, Table 1).

    Arguments:
        ratio: fraction of training pairs with ``r != t`` (Table 1a: 25 %); the rest have ``r = t`` and train the
            instantaneous velocity, as flow matching does.
        p: power of the adaptive loss weight ``w = 1 / (||Delta||^2 + c)^p`` (Table 1e: p = 1, a
            Cauchy-like robust loss; p = 0 is the plain squared error).
        c: the weight's small constant (the paper's 1e-3).
        guidance: ``omega`` of classifier-free guidance built into training (Sec. 4.2): the target's velocity is
            ``omega v + kappa u(z, t, t | c) + (1 - omega - kappa) u(z, t, t | null)``, so the trained network
            samples the guided field at one evaluation per step; 1 = no guidance.
        kappa: the mixing-scale ``kappa`` of the paper's Appendix (0 = its eq. 13 form).
    """

    ratio: float = 0.25
    p: float = 1.0
    c: float = 1e-3
    guidance: float = 1.0
    kappa: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.ratio <= 1.0:
            raise ValueError(f"MeanFlow ratio (fraction of r != t) must be in [0, 1], got {self.ratio}")
        if self.p < 0 or self.c <= 0:
            raise ValueError(f"MeanFlow adaptive weight needs p >= 0 and c > 0, got p={self.p}, c={self.c}")
        if self.guidance <= 0 or not 0.0 <= self.kappa < 1.0:
            raise ValueError(f"MeanFlow guidance omega must be positive and kappa in [0, 1), got omega="
                             f"{self.guidance}, kappa={self.kappa}")


def draw_interval(rng: BatchRandom, sampler: TimeSampler, path: AffinePath, ratio: float,
                  like: Tensor) -> tuple[Tensor, Tensor]:
    """``(r, t)`` (B,) each: two draws of the training-time law, ``t`` the larger; ``r = t`` except on a
    fraction ``ratio`` of the batch (the paper's sampling of the pair, Sec. 4.3)."""
    a, b = sampler.sample(rng, path, like), sampler.sample(rng, path, like)
    t, r = torch.maximum(a, b), torch.minimum(a, b)
    apart = rng.rand((), like=like) < ratio  # (B,)
    return torch.where(apart, r, t), t


def adaptive_loss(err: Tensor, p: float, c: float) -> Tensor:
    """Mean over the batch of ``sg(w) ||Delta||^2`` with ``w = 1 / (||Delta||^2 + c)^p``; ``err`` (B,) is the
    squared error summed over dimensions, as in the paper's weighting."""
    if p == 0:
        return err.mean()
    weight = (err.detach() + c).pow(-p)
    return (weight * err).mean()


__all__ = ["MeanFlow", "adaptive_loss", "draw_interval"]
