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

from typing import Any

import torch
from torch import Tensor
from torch.nn.attention import SDPBackend, sdpa_kernel

from ...paths import AffinePath, LinearPath, expand_like, from_x0_eps
from ...rng import BatchRandom
from .base import Objective, training_labels
from .coupling import Coupling, Paired
from .protocol import FlowModel
from .time_sampling import TimeSampler



def draw_interval(rng: BatchRandom, sampler: TimeSampler, path: AffinePath, ratio: float, like: Tensor,
                  flow_matching_times: bool = True) -> tuple[Tensor, Tensor]:
    """``(r, t)`` (B,) each: ``r != t`` on a fraction ``ratio`` of the batch, there ``t`` the larger and ``r`` the
    smaller of two draws of the training-time law (the paper's sampling of the pair, Sec. 4.3); ``r = t``
    elsewhere, with ``t`` one draw of the law (``flow_matching_times``: flow matching's own times) or, as the
    paper's code does, the larger of the two, which moves the instantaneous field's training towards noise.
    Measured (moons, MLP 3x128, 2000 steps; benchmarks.meanflow_weighting): the field at 100 Euler steps scored
    energy distance 0.0026 with one draw and 0.0079 with the larger, flow matching 0.0014."""
    a, b = sampler.sample(rng, path, like), sampler.sample(rng, path, like)
    t, r = torch.maximum(a, b), torch.minimum(a, b)
    apart = rng.rand((), like=like) < ratio  # (B,)
    same = a if flow_matching_times else t
    return torch.where(apart, r, same), torch.where(apart, t, same)


# how the adaptive weight is applied (model.meanflow.weighting); see :func:`adaptive_loss`
MEANFLOW_WEIGHTINGS: tuple[str, ...] = ("example", "apart", "group")


def adaptive_loss(err: Tensor, p: float, c: float, apart: Tensor | None = None, weighting: str = "example") -> Tensor:
    """Mean over the batch of ``sg(w) ||Delta||^2``; ``err`` (B,) is the squared error summed over dimensions.

    - ``example`` (the paper's, Sec. 4.3): ``w = 1 / (||Delta||^2 + c)^p`` per example. For p > 0 the stationary
      point is no longer the conditional mean of the target but ``E[w Delta] = 0``, a mean that favours the targets
      already near the prediction (p = 1 is a Cauchy-like robust loss, close to minimising ``log(err + c)``);
    - ``apart``: that weight on the ``r != t`` pairs (``apart`` (B,) bool) only; ``r = t`` pairs keep the plain
      squared error, so the instantaneous field's minimiser stays flow matching's ``E[v | z]``;
    - ``group``: one weight per group of the batch (``r = t`` and ``r != t``), ``1 / (mean err of the group + c)^p``:
      the two groups' losses are balanced as the paper's weight balances examples, but a weight that does not
      depend on the example leaves every minimiser where plain least squares puts it.
    """
    if p == 0:
        return err.mean()
    if weighting not in MEANFLOW_WEIGHTINGS:
        raise ValueError(f"MeanFlow weighting must be one of {MEANFLOW_WEIGHTINGS}, got {weighting!r}")
    own = (err.detach() + c).pow(-p)  # (B,)
    if weighting == "example":
        return (own * err).mean()
    apart = torch.zeros_like(err, dtype=torch.bool) if apart is None else apart
    if weighting == "apart":
        return (torch.where(apart, own, torch.ones_like(own)) * err).mean()
    weight = torch.ones_like(err)
    for group in (apart, ~apart):
        if bool(group.any()):
            weight = torch.where(group, (err.detach()[group].mean() + c).pow(-p), weight)
    return (weight * err).mean()


class MeanFlow(Objective):
    """MeanFlow's objective (defaults: the paper's best ImageNet ablations, Table 1): the network learns the
    average velocity ``u(z_t, r, t)`` (a net built with ``interval=True``), so that one evaluation moves ``z_t``
    to ``z_r`` (sampler ``mean-flow``), while ``u(z, t, t)`` stays the velocity every other sampler uses.

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
        weighting: where the adaptive weight applies (:func:`adaptive_loss`): ``example`` (the paper's),
            ``apart`` (``r != t`` pairs only) or ``group`` (one weight per group, the minimiser unmoved).
        flow_matching_times: ``r = t`` pairs take one draw of the time law, as flow matching does, not the
            larger of two (:func:`draw_interval`).
        time_sampler, coupling: as :class:`~flowforge.models.objectives.Objective`.

    Draws, from the batch's stream: the coupling's, the label dropout, then ``(r, t)`` (:func:`draw_interval`).
    """

    trains_interval = True
    # The target holds the network's d/dt: sinusoids of 1000 t change up to 1000x per unit time, which makes that
    # derivative, and the target, noisy. Measured (2-D Gaussian data, std 0.3, MLP 2x64, 400 steps): one-step
    # samples' std 0.05 / 0.09 with 1000 t, 0.21 / 0.19 with t itself (Euler at 100 steps: 0.25).
    time_scale = 1.0

    def __init__(self, ratio: float = 0.25, p: float = 1.0, c: float = 1e-3, guidance: float = 1.0,
                 kappa: float = 0.0, weighting: str = "example", flow_matching_times: bool = True, *,
                 time_sampler: TimeSampler | None = None, coupling: Coupling | None = None):
        super().__init__(time_sampler, coupling)
        if not 0.0 <= ratio <= 1.0:
            raise ValueError(f"MeanFlow ratio (fraction of r != t) must be in [0, 1], got {ratio}")
        if p < 0 or c <= 0:
            raise ValueError(f"MeanFlow adaptive weight needs p >= 0 and c > 0, got p={p}, c={c}")
        if guidance <= 0 or not 0.0 <= kappa < 1.0:
            raise ValueError(f"MeanFlow guidance omega must be positive and kappa in [0, 1), got omega="
                             f"{guidance}, kappa={kappa}")
        if weighting not in MEANFLOW_WEIGHTINGS:
            raise ValueError(f"MeanFlow weighting must be one of {MEANFLOW_WEIGHTINGS}, got {weighting!r}")
        self.ratio, self.p, self.c, self.guidance, self.kappa = ratio, p, c, guidance, kappa
        self.weighting, self.flow_matching_times = weighting, flow_matching_times

    @classmethod
    def from_config(cls, cfg: Any, time_sampler: TimeSampler, coupling: Coupling) -> MeanFlow:
        if cfg.net.checkpoint:
            raise ValueError("model.net.checkpoint cannot be combined with MeanFlow (model.objective=mean-flow): "
                             "torch.utils.checkpoint cannot replay the forward-mode JVP of its target; set "
                             "model.net.checkpoint=false")
        m = cfg.meanflow
        return cls(m.ratio, m.p, m.c, m.guidance, m.kappa, m.weighting, m.flow_matching_times,
                   time_sampler=time_sampler, coupling=coupling)

    def check(self, model: FlowModel) -> None:
        if model.precond is not None or model.target != "velocity" or not isinstance(model.path, LinearPath):
            raise ValueError("MeanFlow (model.objective=mean-flow) is defined on the linear path without "
                             "preconditioning, its network predicting a velocity: set model.path=linear, "
                             "model.precond=none and model.target=velocity")
        if self.guidance != 1.0 and model.num_classes is None:
            raise ValueError("MeanFlow's built-in guidance (model.meanflow.guidance != 1) needs a class-conditional "
                             "model (model.num_classes)")

    def __call__(self, model: FlowModel, x: Tensor | Paired, rng: BatchRandom | None = None,
                 labels: Tensor | None = None) -> Tensor:
        x0, noise, rng = self.pair(model, x, rng)  # (B, *shape) each
        labels = training_labels(model, labels, rng, x0.shape[0], like=x0)
        r, t = draw_interval(rng, self.time_sampler, model.path, self.ratio, like=x0,  # (B,) each, r <= t
                             flow_matching_times=self.flow_matching_times)
        u, target = self.terms(model, x0, noise, r, t, labels)
        err = (u.float() - target.float()).square().flatten(1).sum(1)  # (B,)
        return adaptive_loss(err, self.p, self.c, r != t, self.weighting)

    def terms(self, model: FlowModel, x0: Tensor, noise: Tensor, r: Tensor, t: Tensor,
              labels: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """The network's ``u(z_t, r, t)`` and its regression target ``sg(v - (t - r) du/dt)`` (B, ...) at
        ``z_t = (1 - t) x0 + t noise``, with ``du/dt = v d_z u + d_t u`` from one forward-mode JVP along
        ``(v, 0, 1)`` in ``(z, r, t)``; ``v = noise - x0``, or the guided field when guidance is built in."""
        xt = model.path.sample(x0, noise, t)
        v = from_x0_eps(x0, noise, "velocity", xt.coefficients)  # eps - x0: the conditional velocity
        if self.guidance != 1.0:
            v = self.guided_velocity(model, xt.x_t, t, v, labels)

        def u_of(z: Tensor, time: Tensor) -> Tensor:
            return model.net_output(z, time, labels, interval=time - r)  # r is held fixed: dr/dt = 0

        # the fused attention kernels (flash on CPU) have no forward-mode derivative: attention inside the JVP
        # takes the math path, which holds the L x L scores (MeanFlow's training only; sampling stays fused)
        with sdpa_kernel([SDPBackend.MATH]):
            u, du_dt = torch.func.jvp(u_of, (xt.x_t, t), (v, torch.ones_like(t)))
        return u, (v - expand_like(t - r, v) * du_dt).detach()

    @torch.no_grad()
    def guided_velocity(self, model: FlowModel, x: Tensor, t: Tensor, v: Tensor, labels: Tensor) -> Tensor:
        """MeanFlow's guided field as the target's velocity (Geng et al., 2025, eqs. 13-19): for labelled
        examples ``omega v + kappa u(x, t, t | c) + (1 - omega - kappa) u(x, t, t | null)``; dropped labels
        keep ``v`` (the unconditional field is learned as is)."""
        null = torch.full_like(labels, model.num_classes)
        u_null = model.net_output(x, t, null).to(v.dtype)
        guided = self.guidance * v + (1.0 - self.guidance) * u_null
        if self.kappa:
            u_cond = model.net_output(x, t, labels).to(v.dtype)
            guided = guided + self.kappa * (u_cond - u_null)
        return torch.where(expand_like(labels == model.num_classes, v), v, guided)


__all__ = ["MEANFLOW_WEIGHTINGS", "MeanFlow", "adaptive_loss", "draw_interval"]
