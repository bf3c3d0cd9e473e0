"""A normalizing flow: an invertible transform onto a simple prior, with exact likelihood."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..data.dequantize import Quantization
from ..protocol import GenerativeModel
from ..rng import BatchRandom
from ..transforms import Compose, Transform


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
            layers that declare ``takes_context`` (spline and autoregressive layers) hand it to their
            conditioners; ``log_prob``, ``loss`` and ``sample`` then take ``context`` (batch, context).
    """

    sample_settings = ()  # sampled exactly, by inverting the flow: no sampler, steps or grid
    inpaint_settings = ("steps", "lr")  # projected gradient ascent on the log-density (:meth:`inpaint`)

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
        if context is None:
            return self.transform.inverse(x) if inverse else self.transform(x)
        logdet = x.new_zeros(x.shape[0])
        for t in (reversed(self._layers()) if inverse else self._layers()):
            step = t.inverse if inverse else t
            x, ld = step(x, context) if getattr(t, "takes_context", False) else step(x)
            logdet = logdet + ld
        return x, logdet

    def check_context(self, context: Tensor | None, n: int) -> Tensor | None:
        """``context`` as (n, context_dim) on the model's device (one row is repeated); a ValueError when a
        conditional flow gets none, or an unconditional one gets one."""
        if not self.context_dim:
            if context is not None:
                raise ValueError("context was given to an unconditional flow; build it with a context "
                                 "(data.context_columns)")
            return None
        if context is None:
            raise ValueError(f"this flow is conditional: give a context of shape (batch, {self.context_dim})")
        context = torch.as_tensor(context, dtype=next(self.parameters()).dtype, device=next(self.parameters()).device)
        context = context.reshape(1, -1).expand(n, -1) if context.dim() == 1 else context
        if tuple(context.shape) != (n, self.context_dim):
            raise ValueError(f"context has shape {tuple(context.shape)}; expected ({n}, {self.context_dim}) or "
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

    def inpaint(self, x: Tensor, mask: Tensor, *, steps: int = 500, lr: float = 0.05,
                generator: torch.Generator | None = None) -> Tensor:
        """Fill ``x`` where ``mask`` is False by maximising ``log p`` over those coordinates.

        Projected gradient ascent, NICE's inpainting (arXiv:1410.8516, §5.2): the known coordinates
        stay fixed, the unknown ones start from uniform noise in the data range and follow the gradient of
        the log-density with a decaying step ``lr * 100 / (100 + i)``, projected back into the range
        after every step. ``mask`` has ``x``'s shape (or one example's shape).
        """
        self.check_batch(x)
        if mask.shape not in (x.shape, x.shape[1:]):
            raise ValueError(f"mask has shape {tuple(mask.shape)}, expected {tuple(x.shape)} or one example's "
                             f"shape {tuple(x.shape[1:])} (True = known)")
        mask = mask.to(device=x.device, dtype=torch.bool).expand_as(x)
        y_known = self.to_flow_input(x)
        lo, hi = (0.0, 1.0) if self.quantization is not None else (float(x.min()), float(x.max()))
        noise = torch.rand(x.shape, generator=generator, dtype=x.dtype).to(x.device)
        y = torch.where(mask, y_known, lo + (hi - lo) * noise).detach()
        for i in range(steps):
            y.requires_grad_(True)
            grad, = torch.autograd.grad(self.log_prob_flow(y).sum(), y)
            step = lr * 100.0 / (100.0 + i)
            with torch.no_grad():
                y = torch.where(mask, y_known, (y + step * grad).clamp(lo, hi)).detach()
        return torch.where(mask, x, self.from_flow_input(y))
