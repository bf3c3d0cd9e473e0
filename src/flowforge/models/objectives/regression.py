"""Weighted regression of the network's prediction on its target: flow matching, rectified flow and diffusion,
on a batch or on a pack of images of several resolutions.

.. math:: \\mathcal L = \\mathbb E_{t, x_0, \\varepsilon}\\, w(t)\\, \\rho\\big(f_\\theta(x_t, t) - y_t\\big),
          \\qquad x_t = \\alpha_t x_0 + \\sigma_t \\varepsilon,

where ``y_t`` is the model's target (``x0``, ``eps``, ``v``, ``velocity`` or ``score``,
:mod:`flowforge.paths.conversions`), ``rho`` the squared error averaged over dimensions (or its pseudo-Huber
form) and ``w`` a weight given on the x0 error and converted to the target's units.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ...paths import PathCoefficients, from_x0_eps
from ...rng import BatchRandom
from .base import Objective, training_labels
from .coupling import Coupling, Paired
from .protocol import FlowModel
from .time_sampling import TimeSampler


HUBER_C_PER_SQRT_DIM = 0.00054  # c = 0.00054 sqrt(d): improved consistency training's constant (Song & Dhariwal,
# 2023, arXiv:2310.14189), which the improved rectified flow adopts (Lee et al., 2024, arXiv:2405.20320)


def x0_error_scale(kind: str, c: PathCoefficients) -> Tensor:
    """``k`` with ``|x0 error| = k |prediction error|`` at fixed ``x_t`` (the conversion to x0 is affine)."""
    if kind == "x0":
        return torch.ones_like(c.alpha)
    if kind == "eps":
        return c.sigma / c.alpha
    if kind == "score":
        return c.sigma.square() / c.alpha
    if kind == "v":
        return c.sigma / (c.alpha.square() + c.sigma.square())
    return c.sigma / (c.alpha * c.d_sigma - c.sigma * c.d_alpha)  # velocity


def edm_weight(c: PathCoefficients, sigma_data: float) -> Tensor:
    """EDM's ``lambda(sigma) = (sigma^2 + sigma_d^2) / (sigma sigma_d)^2`` (Karras et al., 2022, eq. 8)."""
    sigma = c.sigma / c.alpha
    return (sigma.square() + sigma_data**2) / (sigma * sigma_data).square()


def min_snr_weight(c: PathCoefficients, sigma_data: float) -> Tensor:
    """``min(SNR, 5)`` (Hang et al., 2023, arXiv:2303.09556)."""
    return c.snr.clamp(max=5.0)


def pseudo_huber(err: Tensor, dims: int, c: float) -> Tensor:
    """``sqrt(|err|^2 + c^2) - c`` on the error's norm, from its mean square ``err`` (B,) over ``dims``: less
    swayed by the few examples with large errors (Lee et al., 2024, arXiv:2405.20320)."""
    return (err * dims + c * c).sqrt() - c


# The config's model.weighting and model.loss choices (tests/test_registries.py checks that they agree).
# A weighting is w(t) on the x0 error (None: w = 1 in the target's units); a loss maps the mean squared error.
WEIGHTINGS: dict[str, Callable[[PathCoefficients, float], Tensor] | None] = {
    "none": None, "edm": edm_weight, "min-snr": min_snr_weight}
LOSSES: dict[str, Callable[[Tensor, int, float], Tensor]] = {
    "l2": lambda err, dims, c: err, "pseudo-huber": pseudo_huber}


class Regression(Objective):
    """The network regresses its target at a random point of the path (flow matching, DDPM, EDM...).

    Arguments:
        time_sampler, coupling: as :class:`~flowforge.models.objectives.Objective`.
        weighting: a name of :data:`WEIGHTINGS`: ``none`` (``w = 1`` in target units: flow matching, DDPM's
            simple loss), ``edm`` or ``min-snr``; a preconditioned model (EDM) is always weighted by ``edm``.
        loss: a name of :data:`LOSSES`: ``l2`` (the squared error averaged over dimensions) or ``pseudo-huber``,
            whose ``c`` is ``huber_c`` (default ``0.00054 sqrt(dims)``).

    Draws, from the batch's stream: the coupling's (dequantization, noise), the times, then the label dropout.

    Example:
        >>> import torch
        >>> from flowforge.models import ContinuousFlow
        >>> from flowforge.models.objectives import LogitNormal, MinibatchOT
        >>> from flowforge.nets import MLP
        >>> from flowforge.paths import LinearPath
        >>> objective = Regression(LogitNormal(), MinibatchOT(), loss="pseudo-huber")
        >>> model = ContinuousFlow(LinearPath(), MLP((2,), width=8, depth=1), (2,), objective=objective)
        >>> model.loss(torch.randn(16, 2)).shape  # model.loss delegates: objective(model, x, rng, labels)
        torch.Size([])
    """

    def __init__(self, time_sampler: TimeSampler | None = None, coupling: Coupling | None = None, *,
                 weighting: str = "none", loss: str = "l2", huber_c: float | None = None):
        super().__init__(time_sampler, coupling)
        if weighting not in WEIGHTINGS:
            raise ValueError(f"unknown weighting {weighting!r}; choose one of {', '.join(WEIGHTINGS)}")
        if loss not in LOSSES:
            raise ValueError(f"unknown loss {loss!r}; choose one of {', '.join(LOSSES)}")
        self.weighting, self.loss, self.huber_c = weighting, loss, huber_c

    @classmethod
    def from_config(cls, cfg: Any, time_sampler: TimeSampler, coupling: Coupling) -> Regression:
        return cls(time_sampler, coupling, weighting=cfg.weighting, loss=cfg.loss, huber_c=cfg.huber_c)

    def __call__(self, model: FlowModel, x: Tensor | Paired, rng: BatchRandom | None = None,
                 labels: Tensor | None = None) -> Tensor:
        x0, noise, rng = self.pair(model, x, rng)  # (B, *shape) each
        t = self.time_sampler.sample(rng, model.path, like=x0)  # (B,)
        labels = training_labels(model, labels, rng, x0.shape[0], like=x0)
        xt = model.path.sample(x0, noise, t)  # x_t = alpha_t x0 + sigma_t eps; coefficients (B, 1, ...)
        target = from_x0_eps(x0, noise, model.target, xt.coefficients)
        pred = model.net_output(xt.x_t, t, labels).float()  # float32 even under bf16 autocast
        err = (pred - target.float()).square().flatten(1).mean(1)  # (B,)
        err = LOSSES[self.loss](err, model.dims, self.c(model))
        if self.weighting_of(model) == "none":
            return err.mean()
        return (self.loss_weight(model, t, xt.coefficients).flatten().float() * err).mean()

    def packed(self) -> Objective:
        return PackedRegression(self.time_sampler, self.coupling, weighting=self.weighting, loss=self.loss,
                                huber_c=self.huber_c)

    def weighting_of(self, model: FlowModel) -> str:
        """The weighting in use: EDM's for a preconditioned model (Karras et al., 2022), else the chosen one."""
        return "edm" if model.precond is not None else self.weighting

    def loss_weight(self, model: FlowModel, t: Tensor, c: PathCoefficients) -> Tensor:
        """Per-example weight ``w(t)`` of the squared error in the target's units (B,)."""
        w_x0 = WEIGHTINGS[self.weighting_of(model)]
        if w_x0 is None:
            return torch.ones_like(t)
        return w_x0(c, model.sigma_data) * x0_error_scale(model.target, c).square()

    def c(self, model: FlowModel) -> float:
        """The pseudo-Huber constant on the model's data: ``huber_c``, or ``0.00054 sqrt(dims)``."""
        return self.huber_c if self.huber_c is not None else HUBER_C_PER_SQRT_DIM * math.sqrt(model.dims)


class PackedRegression(Regression):
    """:class:`Regression` on images of several resolutions (``data.resolutions``), run by the network's
    ``forward_packed`` (:meth:`flowforge.nets.DiT.forward_packed`) as one pack; made by
    :meth:`Regression.packed`, and what :meth:`~flowforge.models.ContinuousFlow.loss` uses on a list.

    ``xs`` holds one group per resolution, (B_g, C, H_g, W_g), and ``labels`` the groups' labels (a list of
    (B_g,), or their concatenation (N,)). Each of the ``N = sum_g B_g`` images gets its own time, noise and
    label dropout, as in :class:`Regression`. Every image weighs the same in the mean, whatever its resolution
    (its squared error is averaged over its own pixels first; the pseudo-Huber ``c`` scales with
    ``sqrt(dims)``). Draws: the times and label dropout from ``rng`` (N rows), then each group's coupling.
    """

    def __call__(self, model: FlowModel, xs: list[Tensor], rng: BatchRandom | None = None,
                 labels: list[Tensor] | Tensor | None = None) -> Tensor:
        sizes = self.check_pack(model, xs, rng)
        n, like = sum(sizes), xs[0]
        rng = rng or BatchRandom.local(n)
        t = self.time_sampler.sample(rng, model.path, like=like)  # (N,)
        if isinstance(labels, (list, tuple)):
            labels = torch.cat(list(labels)) if model.num_classes is not None else None
        labels = training_labels(model, labels, rng, n, like=like)
        xts, targets = [], []
        for x, t_g in zip(xs, t.split(sizes)):
            x0, noise = self.coupling(model, x, BatchRandom(rng.generator, len(x), 0, len(x)))  # (B_g, C, H_g, W_g)
            xt = model.path.sample(x0, noise, t_g)
            xts.append(xt)
            targets.append(from_x0_eps(x0, noise, model.target, xt.coefficients))
        preds = model.net.forward_packed([xt.x_t for xt in xts], t / model.path.t_max, labels)  # [(B_g, C, H_g, W_g)]
        errs = []
        for p, y in zip(preds, targets):
            err = (p.float() - y.float()).square().flatten(1).mean(1)  # (B_g,)
            dims = y[0].numel()
            errs.append(LOSSES[self.loss](err, dims, self.c(model) * math.sqrt(dims / model.dims)))
        err = torch.cat(errs)  # (N,)
        if self.weighting_of(model) == "none":
            return err.mean()
        weight = torch.cat([self.loss_weight(model, t_g, xt.coefficients).flatten()
                            for t_g, xt in zip(t.split(sizes), xts)])
        return (weight.float() * err).mean()

    def packed(self) -> PackedRegression:
        return self

    @staticmethod
    def check_pack(model: FlowModel, xs: list[Tensor], rng: BatchRandom | None) -> list[int]:
        """The groups' sizes, after checking that ``model`` trains on the pack ``xs`` drawn from ``rng``."""
        # a net from outside flowforge.nets declares nothing: it does not pack
        if model.precond is not None or not getattr(model.net, "packs", False):
            raise ValueError("training on packs of several resolutions needs a backbone that packs images "
                             "(model.net.name=dit) without EDM preconditioning (model.precond=none)")
        if not xs or any(x.ndim != len(model.shape) + 1 or x.shape[1] != model.shape[0] for x in xs):
            raise ValueError(f"a pack is a list of image groups (B, {model.shape[0]}, H, W), got "
                             f"{[tuple(x.shape) for x in xs]}")
        sizes = [x.shape[0] for x in xs]
        if rng is not None and (rng.size != sum(sizes) or rng.global_size != sum(sizes)):
            raise ValueError(f"packed training draws for the whole pack in one process: rng over {rng.size} of "
                             f"{rng.global_size} rows for {sum(sizes)} images")
        return sizes


__all__ = ["HUBER_C_PER_SQRT_DIM", "LOSSES", "WEIGHTINGS", "PackedRegression", "Regression", "edm_weight", "min_snr_weight",
           "pseudo_huber", "x0_error_scale"]
