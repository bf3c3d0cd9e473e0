"""A normalizing flow: an invertible transform onto a simple prior, with exact likelihood."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..data.dequantize import Quantization
from ..errors import UserError
from ..protocol import GenerativeModel
from ..rng import BatchRandom
from ..transforms import Compose, Transform
from ..transforms.compose import apply


class ContextError(UserError, ValueError):
    """A context given to a flow built without one, missing for a conditional flow, or of the wrong shape."""


class NormalizingFlow(GenerativeModel):
    """``z = f(y)`` with ``f`` invertible and ``z`` drawn from ``prior``; the change of variables gives

    .. math:: \\log p(y) = \\log p_Z(f(y)) + \\log \\left|\\det \\frac{\\partial f}{\\partial y}\\right|

    (Dinh et al., 2015, arXiv:1410.8516, eq. 1). For discrete data (``quantization`` given), ``y`` is the
    data dequantized to [0, 1] (:mod:`flowforge.data.dequantize`) and :meth:`log_prob` is the density of
    ``y``, the quantity NICE reports; :meth:`bits_per_dim` turns it into the discrete code length.
    Continuous data (2-D points) is modelled as it is.

    Arguments:
        prior: ``log_prob(z) -> (batch,)`` and ``sample(shape, generator, temperature)``.
        layers: the invertible map data -> latent: one transform or a sequence of them, applied in order
            (:mod:`flowforge.transforms`).
        shape: per-example data shape.
        quantization: how the data is discretised, or None for continuous data.
        flatten: the transform acts on flattened vectors (NICE on images).
        context: size of the context vector ``c`` of a conditional flow :math:`p(x \\mid c)`, 0 for none. The
            layers that declare ``takes_context`` (every coupling and autoregressive layer, and the
            :class:`~flowforge.transforms.Compose` / :class:`~flowforge.transforms.FactorOut` around them) hand it
            to their conditioners; ``log_prob``, ``loss`` and ``sample`` then take ``context`` (batch, context).
    """

    sample_settings = ()  # sampled exactly, by inverting the flow: no sampler, steps or grid
    # gradient ascent on the log-density (:meth:`inpaint`)
    inpaint_settings = ("steps", "lr", "line_search", "noise", "temperature", "start")

    def __init__(self, prior: nn.Module, layers: Transform | Sequence[Transform], shape: tuple[int, ...],
                 quantization: Quantization | None = None, flatten: bool = False, context: int = 0):
        super().__init__()
        self.prior = prior
        self.transform = layers if isinstance(layers, Transform) else Compose(*layers)
        self.shape = tuple(shape)
        self.quantization = quantization
        self.flatten = flatten
        self.context_dim = int(context)
        if self.context_dim:
            self.sample_settings = ("context",)
            if not any(getattr(t, "takes_context", False) for t in self._layers()):
                raise ValueError("a conditional flow (context > 0) needs layers that read the context")

    # ------------------------------------------------------------------ data space <-> flow input y

    def _flow_shape(self, y: Tensor) -> Tensor:
        return y.reshape(y.shape[0], -1) if self.flatten else y

    def _data_shape(self, y: Tensor) -> Tensor:
        return y.reshape(y.shape[0], *self.shape)

    def to_flow_input(self, x: Tensor, u: Tensor | None = None) -> Tensor:
        """Data ``x`` to the flow's input ``y``: dequantized with noise ``u`` (bin centres when None) for
        discrete data, unchanged for continuous data."""
        if self.quantization is None:
            return x
        return self.quantization.dequantize(x, u) if u is not None else self.quantization.center(x)

    def from_flow_input(self, y: Tensor) -> Tensor:
        return y if self.quantization is None else self.quantization.from_unit(y)

    # ------------------------------------------------------------------ the flow

    def _layers(self) -> list[nn.Module]:
        return list(self.transform) if isinstance(self.transform, Compose) else [self.transform]

    def _through(self, x: Tensor, context: Tensor | None, inverse: bool) -> tuple[Tensor, Tensor]:
        """Apply the layers (in reverse and inverted when ``inverse``), giving ``context`` to those that read it."""
        return apply(self.transform, x, context, inverse)

    def check_context(self, context: Tensor | None, n: int) -> Tensor | None:
        """``context`` as (n, context_dim) on the model's device (one row is repeated); a :class:`ContextError`
        (a UserError and a ValueError) when a conditional flow gets none, an unconditional one gets one, or the
        shape is wrong."""
        if not self.context_dim:
            if context is not None:
                raise ContextError("context was given to an unconditional flow; drop it, or build the flow with a "
                                   "context (data.context_columns, or a data spec with context_dim)")
            return None
        if context is None:
            raise ContextError(f"this flow is conditional: give a context of shape (batch, {self.context_dim}) "
                               f"or ({self.context_dim},)")
        context = torch.as_tensor(context, dtype=next(self.parameters()).dtype, device=next(self.parameters()).device)
        context = context.reshape(1, -1).expand(n, -1) if context.dim() == 1 else context
        if tuple(context.shape) != (n, self.context_dim):
            raise ContextError(f"context has shape {tuple(context.shape)}; expected ({n}, {self.context_dim}) or "
                             f"({self.context_dim},)")
        return context

    def forward(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Flow input ``y`` (batch, *shape) -> latent ``z`` and ``log|det dz/dy|`` (batch,)."""
        return self._through(self._flow_shape(y), context, inverse=False)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Latent ``z`` -> flow input ``y`` (batch, *shape) and ``log|det dy/dz|`` (batch,)."""
        y, logdet = self._through(z, context, inverse=True)
        return self._data_shape(y), logdet

    def log_prob_flow(self, y: Tensor, context: Tensor | None = None) -> Tensor:
        """Exact log-density of the flow input ``y`` (given ``context``), nats per example (batch,)."""
        z, logdet = self.forward(y, self.check_context(context, y.shape[0]))
        return self.prior.log_prob(z) + logdet

    def log_prob(self, x: Tensor, *, context: Tensor | None = None,
                 generator: torch.Generator | None = None) -> Tensor:
        """Log-density in nats per example (batch,): of ``x`` itself for continuous data; of ``x``
        dequantized with uniform noise (drawn from ``generator``) for discrete data. A conditional flow's
        :math:`\\log p(x \\mid c)` takes ``context`` (batch, context) or (context,)."""
        return self.log_prob_flow(self.to_flow_input(x, self.dequantization_noise(x, generator)), context)

    def loss(self, x: Tensor, rng: BatchRandom | None = None, labels: Tensor | None = None,
             context: Tensor | None = None) -> Tensor:
        """Mean negative log-likelihood per dimension, in nats (dequantized with ``rng``'s noise); a
        conditional flow's given ``context`` (batch, context)."""
        if labels is not None:
            raise ValueError("labels were given to a normalizing flow, which has no class input; "
                             "unset model.num_classes")
        self.check_batch(x)
        rng = rng or BatchRandom.local(x.shape[0])
        u = rng.rand(self.shape, like=x) if self.quantization is not None else None
        return -(self.log_prob_flow(self.to_flow_input(x, u), context).float()).mean() / self.dims

    # ------------------------------------------------------------------ generation and inpainting

    @torch.no_grad()
    def sample(self, n: int, *, context: Tensor | None = None, temperature: float = 1.0,
               generator: torch.Generator | None = None) -> Tensor:
        """``n`` samples (n, *shape) in data space; ``temperature`` scales the prior (Glow, §5). A conditional
        flow draws from :math:`p(x \\mid c)` for ``context`` (n, context), or one (context,) for all ``n``."""
        device = next(self.parameters()).device
        context = self.check_context(context, n)
        flow_shape = (n, self.dims) if self.flatten else (n, *self.shape)
        z = self.prior.sample(flow_shape, generator=generator, temperature=temperature).to(device)
        y, _ = self.inverse(z, context)
        return self.from_flow_input(y)

    def inpaint(self, x: Tensor, mask: Tensor, *, steps: int = 100, lr: float = 0.001, line_search: bool = True,
                noise: float = 0.0, temperature: float = 0.0, start: Tensor | None = None,
                generator: torch.Generator | None = None) -> Tensor:
        """Fill ``x`` where ``mask`` is False by ascending ``log p`` over those coordinates.

        Projected gradient ascent, NICE's inpainting (arXiv:1410.8516, §5.2): the known coordinates stay fixed,
        the unknown ones start from uniform noise in the data range and climb the gradient of the log-density,
        projected back into the range after every step. For discrete data the gradient is taken in the
        dequantized space [0, 1] that the flow models.

        With ``line_search`` (the default), each image has its own step size, starting at ``lr``: a step that
        raises its ``log p`` is kept and the step grows by 1.2, one that does not is undone and the step halves,
        so ``log p`` never falls. Without it, the steps follow the paper's fixed schedule
        ``alpha_i = lr * 100 / (100 + i)`` (its ``10 / (100 + i)`` is ``lr = 0.1``):

        .. math:: y_{i+1} = \\Pi\\big(y_i + \\alpha_i (\\nabla_y \\log p(y_i) + \\text{noise}\\,\\epsilon_i)
                  + \\sqrt{2 \\alpha_i T}\\,\\xi_i\\big)

        ``noise`` scales the Gaussian noise the paper adds to the gradient (``noise = 1`` is its update);
        ``temperature`` T > 0 adds the noise of Langevin dynamics, which draws the missing part from
        ``p(missing | known)^(1/T)`` instead of climbing to a mode. On trained MNIST flows the log-density's
        gradient is about 100 per pixel, so the paper's steps overshoot and pin the pixels to the range's ends,
        with ``log p`` far below the originals' (docs/inpainting.md). ``mask`` has ``x``'s shape (or one
        example's shape).

        ``start`` is where the missing part starts, in data space (``x``'s shape or one example's, e.g. the
        training set's mean image; ``flowforge inpaint --start mean``); None starts it from uniform noise in the
        data range, the paper's "initial state". Local ascent keeps the start's coarse shape, so a smooth start
        gives smoother fills than noise does (docs/inpainting.md measures both).
        """
        self.check_batch(x)
        if mask.shape not in (x.shape, x.shape[1:]):
            raise ValueError(f"mask has shape {tuple(mask.shape)}, expected {tuple(x.shape)} or one example's "
                             f"shape {tuple(x.shape[1:])} (True = known)")
        for name, value in (("noise", noise), ("temperature", temperature)):
            if not (math.isfinite(value) and value >= 0):
                raise UserError(f"inpaint {name}={value}: expected a finite value >= 0 (0 = none), e.g. 1.0")
        if line_search and (noise or temperature):
            raise UserError("inpaint: noise and temperature perturb the fixed schedule's steps; give "
                            "line_search=False with them (a line search keeps only steps that raise log p)")
        mask = mask.to(device=x.device, dtype=torch.bool).expand_as(x)
        y_known = self.to_flow_input(x)
        lo, hi = (0.0, 1.0) if self.quantization is not None else (float(x.min()), float(x.max()))
        y = torch.where(mask, y_known, self._first_fill(x, start, lo, hi, generator)).detach()
        project = lambda y: torch.where(mask, y_known, y.clamp(lo, hi))  # noqa: E731
        if line_search:
            y = self._ascend_with_line_search(y, project, steps, lr)
        else:
            y = self._ascend_on_schedule(y, project, steps, lr, noise, temperature, generator)
        return torch.where(mask, x, self.from_flow_input(y))

    def _first_fill(self, x: Tensor, start: Tensor | None, lo: float, hi: float,
                    generator: torch.Generator | None) -> Tensor:
        """Where the ascent starts, in the flow's input space: ``start`` (data space, ``x``'s shape or one
        example's) or, for None, uniform noise on ``[lo, hi]``."""
        if start is None:
            return lo + (hi - lo) * self._noise(x, generator, uniform=True)
        if isinstance(start, str):
            raise UserError(f"inpaint start={start!r}: give the missing part's first values as a tensor (e.g. the "
                            f"training set's mean image, dataset.train.mean(0)); 'noise' and 'mean' are the "
                            f"command line's names (flowforge inpaint --start), None is uniform noise")
        if start.shape not in (x.shape, x.shape[1:]):
            raise ValueError(f"start has shape {tuple(start.shape)}, expected {tuple(x.shape)} or one example's "
                             f"shape {tuple(x.shape[1:])} (the missing part's first values, in data space)")
        return self.to_flow_input(start.to(device=x.device, dtype=x.dtype).expand_as(x)).clamp(lo, hi)

    def _log_p_and_grad(self, y: Tensor) -> tuple[Tensor, Tensor]:
        y = y.detach().requires_grad_(True)
        log_p = self.log_prob_flow(y)
        grad, = torch.autograd.grad(log_p.sum(), y)
        return log_p.detach(), grad

    def _ascend_on_schedule(self, y: Tensor, project, steps: int, lr: float, noise: float, temperature: float,
                            generator: torch.Generator | None) -> Tensor:
        """NICE's update: ``y + alpha_i (grad + noise eps) + sqrt(2 alpha_i T) xi``, ``alpha_i = lr 100/(100+i)``."""
        for i in range(steps):
            _, grad = self._log_p_and_grad(y)
            alpha = lr * 100.0 / (100.0 + i)
            with torch.no_grad():
                step = alpha * grad
                if noise:
                    step = step + alpha * noise * self._noise(y, generator)
                if temperature:
                    step = step + math.sqrt(2 * alpha * temperature) * self._noise(y, generator)
                y = project(y + step)
        return y.detach()

    def _ascend_with_line_search(self, y: Tensor, project, steps: int, lr: float) -> Tensor:
        """Gradient ascent with a step per example that grows (x1.2) after a rise of ``log p`` and halves,
        undoing the step, after a fall: ``log p`` never decreases."""
        log_p, grad = self._log_p_and_grad(y)
        alpha = torch.full((y.shape[0],), float(lr), dtype=y.dtype, device=y.device)
        for _ in range(steps):
            shape = (-1,) + (1,) * (y.dim() - 1)
            proposal = project(y + alpha.reshape(shape) * grad).detach()
            new_log_p, new_grad = self._log_p_and_grad(proposal)
            up = new_log_p > log_p  # (batch,)
            y = torch.where(up.reshape(shape), proposal, y)
            grad = torch.where(up.reshape(shape), new_grad, grad)
            log_p = torch.where(up, new_log_p, log_p)
            alpha = torch.where(up, alpha * 1.2, alpha * 0.5)
        return y.detach()

    @staticmethod
    def _noise(x: Tensor, generator: torch.Generator | None, uniform: bool = False) -> Tensor:
        """Standard normal (or uniform on [0, 1)) noise of ``x``'s shape, drawn on ``generator``'s device (x's
        without one) and moved to ``x``'s."""
        draw = torch.rand if uniform else torch.randn
        where = generator.device if generator is not None else x.device
        return draw(x.shape, generator=generator, dtype=x.dtype, device=where).to(x.device)
