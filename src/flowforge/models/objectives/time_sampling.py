"""Distributions of the training time ``t``: where on the path the loss is spent."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ...paths import AffinePath
from ...rng import BatchRandom
from ...solvers import shift_times


U_EPS = 1e-6  # the unit time stays in [U_EPS, 1 - U_EPS]


class TimeSampler:
    """Draws ``t`` (batch,) on a path's training range ``[train_t_min, t_max]``."""

    def sample(self, rng: BatchRandom, path: AffinePath, like: Tensor) -> Tensor:
        raise NotImplementedError


class _UnitSampler(TimeSampler):
    """A law of ``u`` on (0, 1), optionally SD3-shifted, mapped affinely onto the path's time range."""

    def __init__(self, shift: float = 1.0):
        if shift <= 0:
            raise ValueError(f"shift must be positive, got {shift}")
        self.shift = shift

    def unit(self, rng: BatchRandom, like: Tensor) -> Tensor:
        raise NotImplementedError

    def sample(self, rng: BatchRandom, path: AffinePath, like: Tensor) -> Tensor:
        u = self.unit(rng, like)  # (B,)
        if self.shift != 1.0:
            u = shift_times(u, self.shift)
        # rand() returns exactly 0 once in 2^24 float32 draws and sigmoid saturates to 1: keep off both ends,
        # where EDM weighting and preconditioning (sigma = 0) and eps / score targets (alpha = 0) are infinite
        u = u.clamp(U_EPS, 1.0 - U_EPS)
        return path.train_t_min + u * (path.t_max - path.train_t_min)


class Uniform(_UnitSampler):
    """``u ~ U(0, 1)``: flow matching's and rectified flow's choice."""

    def unit(self, rng: BatchRandom, like: Tensor) -> Tensor:
        return rng.rand((), like=like)


class LogitNormal(_UnitSampler):
    """``u = sigmoid(m + s n)``, ``n ~ N(0, 1)``: SD3's best of 61 formulations at ``(0, 1)``.

    Esser et al. (2024, arXiv:2403.03206, eq. 19): puts more weight on the middle
    of the path, where the velocity is hardest to predict.
    """

    def __init__(self, m: float = 0.0, s: float = 1.0, shift: float = 1.0):
        super().__init__(shift)
        if s <= 0:
            raise ValueError(f"logit-normal scale s must be positive, got {s}")
        self.m, self.s = m, s

    def unit(self, rng: BatchRandom, like: Tensor) -> Tensor:
        return torch.sigmoid(self.m + self.s * rng.randn((), like=like))


class ModeSampling(_UnitSampler):
    """``t = 1 - u - s (cos^2(pi u / 2) - 1 + u)``, ``u ~ U(0, 1)``: SD3's mode sampling with heavy tails.

    Esser et al. (2024, arXiv:2403.03206, eq. 20): ``s = 0`` is uniform, ``s > 0`` puts more weight on the middle
    of the path while keeping density at both ends (which the logit-normal law starves), ``s < 0`` on the ends.
    The map is monotone, so a law, only for ``-1 <= s <= 2 / (pi - 2)``; SD3's table ranks ``s = 1.29`` best.
    """

    S_MAX = 2.0 / (math.pi - 2.0)

    def __init__(self, s: float = 1.29, shift: float = 1.0):
        super().__init__(shift)
        if not -1.0 <= s <= self.S_MAX:
            raise ValueError(f"mode sampling's scale s must lie in [-1, {self.S_MAX:.4f}] (2 / (pi - 2)), where the "
                             f"map is monotone; got {s}")
        self.s = s

    def unit(self, rng: BatchRandom, like: Tensor) -> Tensor:
        u = rng.rand((), like=like)
        return 1 - u - self.s * (torch.cos(math.pi / 2 * u).square() - 1 + u)


class CosMap(_UnitSampler):
    """``t = 1 - 1 / (tan(pi u / 2) + 1)``, ``u ~ U(0, 1)``: SD3's cosine-mapped times (eq. 21), the rectified
    flow counterpart of the cosine schedule (Nichol & Dhariwal, 2021): symmetric about 1/2, denser at the middle
    than uniform, with density pi / 4 at both ends."""

    def unit(self, rng: BatchRandom, like: Tensor) -> Tensor:
        return 1 - 1 / (torch.tan(math.pi / 2 * rng.rand((), like=like)) + 1)


class GridTimes(TimeSampler):
    """``t = t_max i / k``, ``i`` uniform in ``1..k``: the times a ``k``-step Euler sampler on the uniform grid
    visits. Trained on a coupling's straight lines only there, a network becomes a ``k``-step generator
    (rectified flow's distillation, Liu et al., 2023, arXiv:2209.03003, Sec. 2.3; ``k = 1``: one step from noise).
    """

    def __init__(self, steps: int = 1):
        if steps < 1:
            raise ValueError(f"grid time sampler needs steps >= 1, got {steps}")
        self.steps = steps

    def sample(self, rng: BatchRandom, path: AffinePath, like: Tensor) -> Tensor:
        i = (rng.rand((), like=like) * self.steps).floor().clamp(max=self.steps - 1) + 1  # (B,) in 1..k
        return path.t_max * i / self.steps


class LogNormalSigma(TimeSampler):
    """``ln sigma ~ N(P_mean, P_std^2)``, then ``t = t(sigma)``: EDM's training noise distribution.

    Karras et al. (2022, arXiv:2206.00364, Table 1: P_mean = -1.2, P_std = 1.2).
    ``sigma`` is EDM's noise level ``sigma_t / alpha_t``, so the same law applies
    to every path; times are clipped to the path's training range.
    """

    def __init__(self, P_mean: float = -1.2, P_std: float = 1.2):
        if P_std <= 0:
            raise ValueError(f"P_std must be positive, got {P_std}")
        self.P_mean, self.P_std = P_mean, P_std

    def sample(self, rng: BatchRandom, path: AffinePath, like: Tensor) -> Tensor:
        sigma = torch.exp(self.P_mean + self.P_std * rng.randn((), like=like).double())  # (B,)
        t = path.t_from_sigma(sigma).clamp(path.train_t_min, path.t_max)
        return t.to(like.dtype)


def resolution_shift(n_pixels: int, base_pixels: int = 256 * 256) -> float:
    """SD3's shift ``sqrt(m / n)`` for images of ``m`` pixels against a base resolution of ``n`` pixels."""
    return math.sqrt(n_pixels / base_pixels)
