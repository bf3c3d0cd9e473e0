"""Continuous-time flows and diffusion models: a path, a network and what the network predicts."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from ..data.dequantize import Quantization
from ..nets.mmdit import PAD
from ..paths import PREDICTIONS, AffinePath, LinearPath, PathCoefficients, expand_like, from_x0_eps, to_x0_eps
from ..protocol import GenerativeModel
from ..rng import BatchRandom
from ..solvers import get_solver, ode_likelihood, time_grid
from .captions import Captions
from .conditioning import Conditioning, check_labels, drop_labels
from .field import PathField
from .mean_flow import MeanFlow, adaptive_loss, draw_interval
from .ot import ot_permutation
from .precond import EDMPrecond
from .repaint import inpaint_along_path
from .time_sampling import TimeSampler, Uniform

WEIGHTINGS = ("none", "edm", "min-snr")
LOSSES = ("l2", "pseudo-huber")
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


class ContinuousFlow(GenerativeModel):
    """A path ``x_t = alpha_t x0 + sigma_t eps``, a network, and what the network predicts.

    One class covers rectified flow / flow matching (linear path, velocity
    target), DDPM (VP path, eps target), score matching (VE path, score target)
    and EDM (any path, :class:`EDMPrecond`): they differ only in these choices.
    Training minimises the weighted regression

    .. math:: \\mathcal L = \\mathbb E_{t, x_0, \\varepsilon}\\, w(t) \\lVert f_\\theta(x_t, t) - y_t \\rVert^2,

    averaged over dimensions, where ``y_t`` is the target (``x0``, ``eps``,
    ``v``, ``velocity`` or ``score``, see :mod:`flowforge.paths.conversions`)
    and ``w`` is given on the x0 error and converted to the target's units:
    ``none`` (``w = 1`` in target units: flow matching, DDPM's simple loss),
    ``edm`` (``lambda(sigma) = (sigma^2 + sigma_d^2) / (sigma sigma_d)^2``,
    Karras et al., 2022) or ``min-snr`` (``min(SNR, 5)``, Hang et al., 2023,
    arXiv:2303.09556). With EDM preconditioning the network is wrapped
    (:class:`EDMPrecond`), predicts ``x0`` and is weighted by ``lambda``.

    Because every prediction converts to every other, one trained model is
    sampled by any sampler on any path (:class:`PathField`), its
    log-likelihood is the continuous change of variables along the ODE
    (:meth:`log_prob`), and it inpaints by imposing the known part along the
    path (:meth:`inpaint`).

    Arguments:
        path: the noising path (:mod:`flowforge.paths`).
        net: backbone ``net(x, t[, labels])``; it sees ``t / t_max`` (or EDM's ``c_noise`` when preconditioned).
        shape: per-example data shape.
        target: what ``net`` predicts, one of ``x0, eps, v, velocity, score``; ignored with ``precond``.
        precond: EDM's ``sigma_data`` to wrap ``net`` in :class:`EDMPrecond`, or None.
        time_sampler: law of the training time (default uniform on the path's range).
        weighting: ``none``, ``edm`` or ``min-snr``.
        loss: ``l2`` (the squared error averaged over dimensions) or ``pseudo-huber``,
            ``sqrt(|err|^2 + c^2) - c`` on the error's norm, less swayed by the few examples with large errors
            (Lee et al., 2024, arXiv:2405.20320); ``huber_c`` is ``c`` (default ``0.00054 sqrt(dims)``).
        num_classes: class-conditional model with this many classes (label ``num_classes`` is "no label").
        label_dropout: probability of replacing a label by "no label" in training (classifier-free guidance).
        ot_coupling: pair noise with data by minibatch optimal transport (OT-CFM).
        quantization: discrete data is dequantized uniformly in training and likelihood, as for the flows.
        mean_flow: train the network on the average velocity ``u(x_t, r, t)`` over ``[r, t]`` instead
            (:class:`~flowforge.models.mean_flow.MeanFlow`; linear path, ``velocity`` target, a net built with
            ``interval=True``): one network evaluation then moves ``x_t`` to ``x_r`` (sampler ``mean-flow``),
            and ``u(x, t, t)`` is still the velocity every other sampler and the likelihood use.
        captions: a text-conditioned model (:class:`~flowforge.models.captions.Captions`): the data set's labels
            become captions by templates drawn from the batch's random stream, ``net`` takes their token ids,
            label dropout drops the caption (the empty caption), and sampling takes ``prompts``.
    """

    def __init__(self, path: AffinePath, net: nn.Module, shape: tuple[int, ...], *, target: str = "velocity",
                 precond: float | None = None, time_sampler: TimeSampler | None = None, weighting: str = "none",
                 loss: str = "l2", huber_c: float | None = None,
                 num_classes: int | None = None, label_dropout: float = 0.0, ot_coupling: bool = False,
                 quantization: Quantization | None = None, value_range: tuple[float, float] | None = None,
                 mean_flow: MeanFlow | None = None, captions: Captions | None = None):
        super().__init__()
        if target not in PREDICTIONS:
            raise ValueError(f"unknown target {target!r}; choose one of {', '.join(PREDICTIONS)}")
        if weighting not in WEIGHTINGS:
            raise ValueError(f"unknown weighting {weighting!r}; choose one of {', '.join(WEIGHTINGS)}")
        if loss not in LOSSES:
            raise ValueError(f"unknown loss {loss!r}; choose one of {', '.join(LOSSES)}")
        if not 0.0 <= label_dropout < 1.0:
            raise ValueError(f"label_dropout must be in [0, 1), got {label_dropout}")
        if label_dropout > 0 and num_classes is None:
            raise ValueError("label_dropout needs a class-conditional model (num_classes)")
        if captions is not None and num_classes != captions.num_classes:
            raise ValueError(f"captions of {captions.num_classes} class names need num_classes="
                             f"{captions.num_classes}, got {num_classes}")
        if quantization is not None and value_range is None:
            raise ValueError("quantized data needs its value_range (lo, hi)")
        if mean_flow is not None and (precond is not None or target != "velocity" or not isinstance(path, LinearPath)):
            raise ValueError("MeanFlow (model.target=mean-velocity) is defined on the linear path without "
                             "preconditioning: set model.path=linear and model.precond=none")
        if mean_flow is not None and mean_flow.guidance != 1.0 and num_classes is None:
            raise ValueError("MeanFlow's built-in guidance (model.meanflow_guidance != 1) needs a class-conditional "
                             "model (model.num_classes)")
        self.path = path
        self.net = EDMPrecond(net, precond) if precond is not None else net
        self.precond = self.net if precond is not None else None
        self.shape = tuple(shape)
        self.target = "x0" if precond is not None else target
        self.time_sampler = time_sampler or Uniform()
        self.weighting = "edm" if precond is not None else weighting
        self.sigma_data = precond if precond is not None else 0.5
        self.num_classes, self.label_dropout, self.ot_coupling = num_classes, label_dropout, ot_coupling
        self.quantization, self.value_range = quantization, value_range
        self.mean_flow = mean_flow
        self.loss_kind = loss
        self.huber_c = huber_c if huber_c is not None else HUBER_C_PER_SQRT_DIM * math.sqrt(math.prod(self.shape))
        self.captions = captions

    takes_sampler = True  # sample() integrates the ODE/SDE along a time grid

    @property
    def predicts_velocity(self) -> bool:
        """Whether the network's output is the path's velocity itself (finite at ``t = 0``)."""
        return self.precond is None and self.target == "velocity"

    # ------------------------------------------------------------------ the network's prediction

    def _raw(self, x: Tensor, t: Tensor, labels: Tensor | None, interval: Tensor | None = None) -> Tensor:
        """The network's output at path point ``x`` (B, ...), time ``t`` (B,): the target, or x0 under precond;
        for a MeanFlow model the average velocity over ``[t - interval, t]`` (``interval`` None: 0)."""
        extra = () if labels is None else (labels,)
        if self.precond is not None:
            c = self.path.coefficients(t)  # (B,)
            x_hat = x / expand_like(c.alpha, x)  # EDM's s = 1 coordinates
            return self.precond(x_hat, c.sigma / c.alpha, *extra)
        if self.mean_flow is not None:
            interval = torch.zeros_like(t) if interval is None else interval
            return self.net(x, t / self.path.t_max, *extra, interval=interval / self.path.t_max)
        return self.net(x, t / self.path.t_max, *extra)

    def conditioning(self, labels: Tensor | None, batch: int, device: torch.device, guidance: float = 1.0,
                     prompts: str | list[str] | None = None) -> Conditioning:
        """Labels (or a text model's prompts) and guidance checked once per sampling run; :meth:`guided_output`
        then reads nothing back to the host per network evaluation.

        A text model conditions on ``prompts`` (one for all, or one per example; "" is the empty caption), or
        without them on its labels' captions by the first template (no label: the empty caption).
        """
        if self.captions is None:
            if prompts is not None:
                raise ValueError("prompts need a text-conditioned model (trained with model.text.captions set); "
                                 "this one has no text input")
            return Conditioning.check(self.num_classes, labels, batch, device, guidance)
        if prompts is not None and labels is not None:
            raise ValueError("give a text model labels or prompts, not both")
        if prompts is not None:
            text = self.captions.encode(prompts, batch, device)  # (B, L)
        else:
            text = self.captions.label_tokens(check_labels(self.num_classes, labels, batch, device))  # (B, L)
        return Conditioning(None, 1.0 if bool((text == PAD).all()) else guidance, text)

    def guided_output(self, x: Tensor, t: Tensor, cond: Conditioning = Conditioning(),
                      interval: Tensor | None = None) -> Tensor:
        """The network's output at ``x`` (B, ...), ``t`` (B,) under ``cond`` (from :meth:`conditioning`),
        with classifier-free guidance ``raw_u + w (raw_c - raw_u)`` when ``cond.guidance != 1``; no labels on
        a class-conditional model mean "no label". ``interval`` (B,): a MeanFlow model's ``t - r``."""
        given = cond.text if self.captions is not None else cond.labels  # a text model: captions' token ids
        if given is None and self.captions is not None:
            given = torch.full((x.shape[0], 1), PAD, dtype=torch.long, device=x.device)  # the empty caption
        elif given is None and self.num_classes is not None:
            given = torch.full((x.shape[0],), self.num_classes, dtype=torch.long, device=x.device)
        if cond.guidance == 1.0:
            return self._raw(x, t, given, interval).to(x.dtype)
        null = torch.full_like(given, PAD if self.captions is not None else self.num_classes)
        twice = None if interval is None else torch.cat([interval, interval])
        both = self._raw(torch.cat([x, x]), torch.cat([t, t]), torch.cat([given, null]), twice).to(x.dtype)
        raw_c, raw_u = both.chunk(2)
        return raw_u + cond.guidance * (raw_c - raw_u)

    def guided_x0_eps(self, x: Tensor, t: Tensor, cond: Conditioning = Conditioning()) -> tuple[Tensor, Tensor]:
        """``(E[x0 | x_t], E[eps | x_t])`` under ``cond`` (already checked: no host reads)."""
        raw = self.guided_output(x, t, cond)
        return to_x0_eps(raw, self.target, x, self.path.coefficients(expand_like(t, x)))

    def x0_eps(self, x: Tensor, t: Tensor, labels: Tensor | None = None,
               guidance: float = 1.0) -> tuple[Tensor, Tensor]:
        """``(E[x0 | x_t], E[eps | x_t])`` on the model's path; ``x`` (B, ...), ``t`` (B,)."""
        return self.guided_x0_eps(x, t, self.conditioning(labels, x.shape[0], x.device, guidance))

    def predict(self, x: Tensor, t: Tensor, kind: str, labels: Tensor | None = None,
                guidance: float = 1.0) -> Tensor:
        """The prediction of ``kind`` (x0, eps, v, velocity, score) at ``x`` (B, ...), ``t`` (B,)."""
        raw = self.guided_output(x, t, self.conditioning(labels, x.shape[0], x.device, guidance))
        return self.convert(raw, x, t, kind)

    def convert(self, raw: Tensor, x: Tensor, t: Tensor, kind: str) -> Tensor:
        """The network output ``raw`` at ``(x, t)`` as the prediction of ``kind``."""
        if kind == self.target:
            return raw
        c = self.path.coefficients(expand_like(t, x))
        x0, eps = to_x0_eps(raw, self.target, x, c)
        return from_x0_eps(x0, eps, kind, c)

    def velocity(self, x: Tensor, t: Tensor) -> Tensor:
        """The probability-flow ``dx/dt`` on the model's path at ``x`` (B, ...), ``t`` (B,)."""
        return PathField(self).velocity(x, t)

    def mean_velocity(self, x: Tensor, r: Tensor, t: Tensor, cond: Conditioning = Conditioning()) -> Tensor:
        """A MeanFlow model's average velocity ``u(x_t, r, t)`` (B, ...) over ``[r, t]``: ``x_r = x_t - (t - r) u``."""
        if self.mean_flow is None:
            raise ValueError("the average velocity u(x, r, t) needs a MeanFlow model (trained with "
                             "model.target=mean-velocity); this one predicts the instantaneous "
                             f"{self.target}: sample it with an ODE sampler (euler, heun, dopri5, ...)")
        return self.guided_output(x, t, cond, interval=t - r)

    # ------------------------------------------------------------------ data space

    def to_model_space(self, x: Tensor, u: Tensor | None) -> Tensor:
        """Discrete data dequantized with uniform ``u`` (bin centres if None), mapped back onto its value range."""
        if self.quantization is None:
            return x
        y = self.quantization.dequantize(x, u) if u is not None else self.quantization.center(x)  # [0, 1)
        lo, hi = self.value_range
        return lo + (hi - lo) * y

    def from_model_space(self, x: Tensor) -> Tensor:
        """Model-space values back to data: for discrete data, the data value of the dequantization bin each
        falls in (what a normalizing flow's ``sample`` returns), else ``x`` itself."""
        if self.quantization is None:
            return x
        lo, hi = self.value_range
        return self.quantization.from_unit(((x - lo) / (hi - lo)).clamp(0.0, 1.0))

    # ------------------------------------------------------------------ training

    def loss_weight(self, t: Tensor, c: PathCoefficients) -> Tensor:
        """Per-example weight ``w(t)`` of the squared error in the target's units (B,)."""
        if self.weighting == "none":
            return torch.ones_like(t)
        if self.weighting == "edm":
            sigma = c.sigma / c.alpha
            w_x0 = (sigma.square() + self.sigma_data**2) / (sigma * self.sigma_data).square()
        else:
            w_x0 = c.snr.clamp(max=5.0)
        return w_x0 * x0_error_scale(self.target, c).square()

    def loss(self, x: Tensor | list[Tensor], rng: BatchRandom | None = None,
             labels: Tensor | list[Tensor] | None = None, noise: Tensor | None = None) -> Tensor:
        """The training loss on data ``x`` (B, *shape), or on a pack of images of several resolutions (a list
        of groups, :meth:`packed_loss`); ``noise`` (B, *shape) pairs each example with its own noise instead of
        independent draws: a coupling such as reflow's (noise, ODE end point) pairs, whose ``x`` is then already
        in model space (continuous end points: no dequantization, no OT pairing)."""
        if isinstance(x, (list, tuple)):
            if noise is not None:
                raise ValueError("packs of several resolutions train on independent noise, not on paired noise")
            return self.packed_loss(x, rng, labels)
        self.check_batch(x)
        rng = rng or BatchRandom.local(x.shape[0])
        if noise is None:
            x0 = self.to_model_space(x, rng.rand(self.shape, like=x) if self.quantization is not None else None)
            noise = rng.randn(self.shape, like=x)  # (B, *shape)
            if self.ot_coupling:
                noise = noise[ot_permutation(x0, noise)]
        elif noise.shape != x.shape:
            raise ValueError(f"paired noise must have the data's shape {tuple(x.shape)}, got {tuple(noise.shape)}")
        else:
            x0 = x
        if self.mean_flow is None:  # MeanFlow draws its (r, t) below
            t = self.time_sampler.sample(rng, self.path, like=x)  # (B,)
        if self.num_classes is not None:
            drop = rng.rand((), like=x) < self.label_dropout  # (B,)
            labels = drop_labels(check_labels(self.num_classes, labels, x.shape[0], x.device, check_values=False),
                                 drop, self.num_classes)
            if self.captions is not None:  # a template per example from the same stream; "no label": no caption
                labels = self.captions.training_tokens(labels, rng)  # (B, L)
        else:
            labels = None  # an unconditional model ignores the data set's labels
        if self.mean_flow is not None:
            return self._mean_flow_loss(x0, noise, labels, rng)
        xt = self.path.sample(x0, noise, t)  # x_t = alpha_t x0 + sigma_t eps; coefficients (B, 1, ...)
        target = from_x0_eps(x0, noise, self.target, xt.coefficients)
        pred = self._raw(xt.x_t, t, labels).float()  # float32 even under bf16 autocast
        err = (pred - target.float()).square().flatten(1).mean(1)  # (B,)
        if self.loss_kind == "pseudo-huber":  # on the error's norm: sqrt(sum err^2 + c^2) - c
            c = self.huber_c
            err = (err * self.dims + c * c).sqrt() - c
        if self.weighting == "none":
            return err.mean()
        return (self.loss_weight(t, xt.coefficients).flatten().float() * err).mean()

    def _mean_flow_loss(self, x0: Tensor, noise: Tensor, labels: Tensor | None, rng: BatchRandom) -> Tensor:
        """MeanFlow's objective (:mod:`flowforge.models.mean_flow`) on a batch, ``(r, t)`` drawn as the paper does."""
        mf = self.mean_flow
        r, t = draw_interval(rng, self.time_sampler, self.path, mf.ratio, like=x0)  # (B,) each, r <= t
        u, target = self.mean_flow_terms(x0, noise, r, t, labels)
        err = (u.float() - target.float()).square().flatten(1).sum(1)  # (B,)
        return adaptive_loss(err, mf.p, mf.c)

    def mean_flow_terms(self, x0: Tensor, noise: Tensor, r: Tensor, t: Tensor,
                        labels: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """The network's ``u(z_t, r, t)`` and its regression target ``sg(v - (t - r) du/dt)`` (B, ...) at
        ``z_t = (1 - t) x0 + t noise``, with ``du/dt = v d_z u + d_t u`` from one forward-mode JVP along
        ``(v, 0, 1)`` in ``(z, r, t)``; ``v = noise - x0``, or the guided field when guidance is built in."""
        xt = self.path.sample(x0, noise, t)
        v = from_x0_eps(x0, noise, "velocity", xt.coefficients)  # eps - x0: the conditional velocity
        if self.mean_flow.guidance != 1.0:
            v = self._guided_target_velocity(xt.x_t, t, v, labels)

        def u_of(z: Tensor, time: Tensor) -> Tensor:
            return self._raw(z, time, labels, interval=time - r)  # r is held fixed: dr/dt = 0

        # the fused attention kernels (flash on CPU) have no forward-mode derivative: attention inside the JVP
        # takes the math path, which holds the L x L scores (MeanFlow's training only; sampling stays fused)
        with sdpa_kernel([SDPBackend.MATH]):
            u, du_dt = torch.func.jvp(u_of, (xt.x_t, t), (v, torch.ones_like(t)))
        return u, (v - expand_like(t - r, v) * du_dt).detach()

    @torch.no_grad()
    def _guided_target_velocity(self, x: Tensor, t: Tensor, v: Tensor, labels: Tensor) -> Tensor:
        """MeanFlow's guided field as the target's velocity (Geng et al., 2025, eqs. 13-19): for labelled
        examples ``omega v + kappa u(x, t, t | c) + (1 - omega - kappa) u(x, t, t | null)``; dropped labels
        keep ``v`` (the unconditional field is learned as is)."""
        mf = self.mean_flow
        null = torch.full_like(labels, self.num_classes)
        u_null = self._raw(x, t, null).to(v.dtype)
        guided = mf.guidance * v + (1.0 - mf.guidance) * u_null
        if mf.kappa:
            u_cond = self._raw(x, t, labels).to(v.dtype)
            guided = guided + mf.kappa * (u_cond - u_null)
        return torch.where(expand_like(labels == self.num_classes, v), v, guided)

    def packed_loss(self, xs: list[Tensor], rng: BatchRandom | None = None,
                    labels: list[Tensor] | Tensor | None = None) -> Tensor:
        """:meth:`loss` on images of several resolutions, run by the network as one pack without padding.

        ``xs`` holds one group per resolution, (B_g, C, H_g, W_g), and ``labels`` the groups' labels (a list of
        (B_g,), or their concatenation (N,)). Each of the ``N = sum_g B_g`` images gets its own time, noise and
        label dropout, as in :meth:`loss`; the network's ``forward_packed``
        (:meth:`flowforge.nets.DiT.forward_packed`) predicts all of them in one pass. Every image weighs the same
        in the mean, whatever its resolution (its squared error is averaged over its own pixels first).
        Draws: the times and label dropout from ``rng`` (N rows), then each group's dequantization and noise.
        """
        forward_packed = getattr(self.net, "forward_packed", None)
        if self.mean_flow is not None:
            raise ValueError("MeanFlow (model.target=mean-velocity) does not train on packs of several resolutions "
                             "yet; unset data.resolutions")
        if forward_packed is None or self.precond is not None:
            raise ValueError("training on packs of several resolutions needs a backbone that packs images "
                             "(model.net.name=dit) without EDM preconditioning (model.precond=none)")
        if not xs or any(x.ndim != len(self.shape) + 1 or x.shape[1] != self.shape[0] for x in xs):
            raise ValueError(f"a pack is a list of image groups (B, {self.shape[0]}, H, W), got "
                             f"{[tuple(x.shape) for x in xs]}")
        sizes = [x.shape[0] for x in xs]
        n, like = sum(sizes), xs[0]
        rng = rng or BatchRandom.local(n)
        if rng.size != n or rng.global_size != n:
            raise ValueError(f"packed training draws for the whole pack in one process: rng over {rng.size} of "
                             f"{rng.global_size} rows for {n} images")
        t = self.time_sampler.sample(rng, self.path, like=like)  # (N,)
        if self.num_classes is not None:
            labels = torch.cat(list(labels)) if isinstance(labels, (list, tuple)) else labels
            drop = rng.rand((), like=like) < self.label_dropout  # (N,)
            labels = drop_labels(check_labels(self.num_classes, labels, n, like.device, check_values=False),
                                 drop, self.num_classes)
        else:
            labels = None
        xts, targets = [], []
        for x, t_g in zip(xs, t.split(sizes)):
            group = BatchRandom(rng.generator, len(x), 0, len(x))
            x0 = self.to_model_space(x, group.rand(x.shape[1:], like=x) if self.quantization is not None else None)
            noise = group.randn(x.shape[1:], like=x)  # (B_g, C, H_g, W_g)
            if self.ot_coupling:
                noise = noise[ot_permutation(x0, noise)]
            xt = self.path.sample(x0, noise, t_g)
            xts.append(xt)
            targets.append(from_x0_eps(x0, noise, self.target, xt.coefficients))
        preds = forward_packed([xt.x_t for xt in xts], t / self.path.t_max, labels)  # [(B_g, C, H_g, W_g)]
        errs = []
        for p, y in zip(preds, targets):
            err = (p.float() - y.float()).square().flatten(1).mean(1)  # (B_g,)
            if self.loss_kind == "pseudo-huber":  # as in loss(), with c scaled to the image's dimension
                dims = y[0].numel()
                c = self.huber_c * math.sqrt(dims / self.dims)
                err = (err * dims + c * c).sqrt() - c
            errs.append(err)
        err = torch.cat(errs)  # (N,)
        if self.weighting == "none":
            return err.mean()
        weight = torch.cat([self.loss_weight(t_g, xt.coefficients).flatten() for t_g, xt in zip(t.split(sizes), xts)])
        return (weight.float() * err).mean()

    # ------------------------------------------------------------------ generation

    def sigma_top(self, sigma_max: float = 80.0) -> float:
        """The highest EDM noise level ``sigma = sigma_t / alpha_t`` at which the model can be queried.

        The end of its own path, unless that end is ``alpha = 0`` (the linear path's
        ``t = 1``, ``sigma = inf``) and the network's output does not determine the
        field there: an ``eps`` or ``score`` prediction, or EDM preconditioning
        (``x / alpha``), gives ``x0 = (x - sigma eps) / alpha = 0 / 0``. Such a model
        starts sampling at ``sigma_max`` instead, like EDM.
        """
        top = self.path.sigma_range()[1]
        if math.isfinite(top) or (self.precond is None and self.target in ("velocity", "x0", "v")):
            return top
        return sigma_max

    def time_grid(self, steps: int, *, grid: str | None = None, path: AffinePath | None = None,
                  sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0,
                  shift: float = 3.0, finite_start: bool = False) -> Tensor:
        """Sampling times (steps + 1,) on ``path`` (default: the model's own) from noise to ``t = 0``, starting
        at most at :meth:`sigma_top`; see :func:`flowforge.solvers.time_grid` for the grids."""
        return time_grid(path or self.path, steps, grid=grid, sigma_top=self.sigma_top(sigma_max),
                         sigma_min=sigma_min, sigma_max=sigma_max, rho=rho, shift=shift, finite_start=finite_start)

    @torch.no_grad()
    def sample(self, n: int, *, sampler: str = "euler", steps: int = 100, grid: str | None = None,
               path: AffinePath | None = None, labels: Tensor | None = None, guidance: float = 1.0,
               generator: torch.Generator | None = None, progress: bool = False, return_nfe: bool = False,
               grid_options: dict[str, float] | None = None, dequantized: bool = False,
               shape: tuple[int, ...] | None = None, noise: Tensor | None = None,
               prompts: str | list[str] | None = None,
               **sampler_options: Any) -> Tensor:
        """``n`` samples (n, *shape) by ``sampler`` on ``path``'s ODE/SDE (default: the training path).

        For discrete data the samples are data values, each the level whose dequantization bin the ODE's
        end point falls in, as the normalizing flows return them; ``dequantized=True`` returns the
        continuous end points themselves.

        Arguments:
            sampler: a name of :data:`flowforge.solvers.SOLVERS`; ``sampler_options`` go to it (``eta``, ``S_churn``...).
            steps: grid intervals (NFE per step depends on the method; ``return_nfe`` reports it).
            grid: ``uniform``, ``karras`` or ``shifted`` (:meth:`time_grid`); ``grid_options`` its parameters.
                The default is the path's (:func:`~flowforge.solvers.time_grid`), or ``karras`` for a sampler
                that cannot start at infinite noise (``finite_start``).
            labels: (n,) classes of a class-conditional model; ``guidance`` the CFG weight.
            prompts: a text model's prompt for every sample, or one per sample (instead of ``labels``).
            shape: another image size (C, H', W') to sample at, for a backbone that takes several resolutions
                (DiT). The grid's noise levels are then scaled by SD3's ``s = sqrt(m / n)`` for ``m`` pixels asked
                and ``n`` trained (Esser et al., 2024, arXiv:2403.03206, eq. 23; :meth:`resolution_shift`): more
                pixels carry more signal at a given noise level, so larger images spend more steps at high noise.
            noise: the starting state (n, *shape) at the grid's first time, instead of a draw from the prior
                with ``generator`` (which draws exactly this for the same generator state): reflow's pairs keep it.
        """
        shape = self.sampling_shape(shape)
        solver = get_solver(sampler, **sampler_options)
        device = next(self.parameters()).device
        field = PathField(self, path, self.conditioning(labels, n, device, guidance, prompts))
        times = self.time_grid(steps, grid=grid, path=field.path, finite_start=solver.finite_start,
                               **(grid_options or {}))
        if shape != self.shape:
            times = self.resolution_shift(times, field.path, math.sqrt(math.prod(shape[1:]) / math.prod(self.shape[1:])))
        if noise is None:
            x = field.path.prior_sample((n, *shape), float(times[0]), generator=generator).to(device)
        elif tuple(noise.shape) != (n, *shape):
            raise ValueError(f"noise must have shape {(n, *shape)}, got {tuple(noise.shape)}")
        else:
            x = noise.to(device)
        result = solver.solve(field, x, times, progress=progress, generator=generator)
        x = result.x if dequantized else self.from_model_space(result.x)
        return (x, result.nfe) if return_nfe else x

    def resolution_shift(self, times: Tensor, path: AffinePath, s: float) -> Tensor:
        """``times`` on ``path`` moved to ``s`` times their noise level, ``sigma' = s sigma`` (EDM's sigma), capped
        at the highest level the model can be queried at: SD3's eq. 23 on every path (on the linear path,
        ``sigma = t / (1 - t)``, it is :func:`~flowforge.solvers.shift_times`, ``t' = s t / (1 + (s - 1) t)``)."""
        sigma = path.edm_sigma(times.double())
        top = min(self.sigma_top(), path.sigma_range()[1])
        shifted = (s * sigma).clamp(max=top)
        out = times.clone()
        moved = torch.isfinite(shifted) & (sigma > 0)  # the infinite start (linear t = 1) and t = 0 stay
        out[moved] = path.t_from_sigma(shifted[moved]).clamp(0.0, path.t_max).to(times.dtype)
        return out

    def sampling_shape(self, shape: tuple[int, ...] | None) -> tuple[int, ...]:
        """The per-example shape to sample at: the model's own, or another image size with its channels."""
        if shape is None or tuple(shape) == self.shape:
            return self.shape
        shape = tuple(int(s) for s in shape)
        if len(self.shape) != 3 or len(shape) != 3 or shape[0] != self.shape[0] or min(shape) < 1:
            raise ValueError(f"shape {shape}: a model of data {self.shape} samples at another size only for images, "
                             f"with the same {self.shape[0]} channel(s): (C, H, W)")
        return shape

    # ------------------------------------------------------------------ likelihood and inpainting

    def log_prob(self, x: Tensor, *, divergence: str | None = None, probes: int = 1, method: str = "dopri5",
                 steps: int = 100, rtol: float = 1e-5, atol: float = 1e-5, path: AffinePath | None = None,
                 generator: torch.Generator | None = None, return_nfe: bool = False) -> Tensor:
        """Log-density in nats (batch,) by the continuous change of variables along the probability-flow ODE.

        ``log p_0(x) = log p_T(x_T) + int_0^T div v(x_t, t) dt`` (Chen et al., 2018,
        arXiv:1806.07366; Lipman et al., 2023, Appendix C), integrated from the
        data to the path's noise end ``T``, where ``p_T`` is taken to be
        ``N(0, (alpha_T^2 sigma_data^2 + sigma_T^2) I)``: exact for the linear
        path, whose ``alpha_1 = 0``; for VP and EDM paths the neglected data mean
        ``alpha_T E[x0]`` costs about ``|E x0| / sigma(T)`` nats (measured 0.03 nats
        for ``|E x0| = 0.8`` at ``sigma_max = 80``; nothing for centred data). ``divergence`` is ``exact`` (one backward
        pass per dimension; default up to 16 dimensions) or ``hutchinson`` with
        ``probes`` Rademacher probes (unbiased; the default above). For discrete
        data (``quantization``) ``x`` is dequantized with uniform noise from
        ``generator`` and the density is that of the dequantized point in
        ``[0, 1]^D``, the normalizing flows' protocol, so numbers compare. ``path``
        integrates another path's ODE of the same model (e.g. ``EDMPath`` for a
        VE model, whose ``sqrt(t)`` time is singular at 0).
        """
        x_model = self.to_model_space(x, self.dequantization_noise(x, generator))
        divergence = divergence or ("exact" if self.dims <= 16 else "hutchinson")
        field = PathField(self, path)
        t_end = field.path.t_max
        result = ode_likelihood(field.velocity, x_model, t_end, divergence=divergence, probes=probes, method=method,
                                steps=steps, rtol=rtol, atol=atol, generator=generator)
        c = field.path.coefficients(torch.tensor(t_end, dtype=torch.float64))
        var = float(c.alpha) ** 2 * self.sigma_data**2 + float(c.sigma) ** 2
        x1 = result.x1.flatten(1).double()
        log_prior = -0.5 * (x1.square().sum(1) / var + self.dims * math.log(2 * math.pi * var))
        log_p = log_prior + result.delta_log_p.double()
        if self.quantization is not None:
            lo, hi = self.value_range
            log_p = log_p + self.dims * math.log(hi - lo)  # density of y in [0, 1]^D
        log_p = log_p.to(x.dtype)
        return (log_p, result.nfe) if return_nfe else log_p

    def inpaint(self, x: Tensor, mask: Tensor, **options: Any) -> Tensor:
        """Fill ``x`` where ``mask`` is False; see :func:`flowforge.models.repaint.inpaint_along_path`."""
        return inpaint_along_path(self, x, mask, **options)
