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
    """

    def __init__(self, prior: nn.Module, layers: Transform | Sequence[Transform], shape: tuple[int, ...],
                 quantization: Quantization | None = None, flatten: bool = False):
        super().__init__()
        self.prior = prior
        self.transform = layers if isinstance(layers, Transform) else Compose(*layers)
        self.shape = tuple(shape)
        self.quantization = quantization
        self.flatten = flatten

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

    def forward(self, y: Tensor) -> tuple[Tensor, Tensor]:
        """Flow input ``y`` (batch, *shape) -> latent ``z`` and ``log|det dz/dy|`` (batch,)."""
        return self.transform(self._flow_shape(y))

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """Latent ``z`` -> flow input ``y`` (batch, *shape) and ``log|det dy/dz|`` (batch,)."""
        y, logdet = self.transform.inverse(z)
        return self._data_shape(y), logdet

    def log_prob_flow(self, y: Tensor) -> Tensor:
        """Exact log-density of the flow input ``y``, nats per example (batch,)."""
        z, logdet = self.forward(y)
        return self.prior.log_prob(z) + logdet

    def log_prob(self, x: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """Log-density in nats per example (batch,): of ``x`` itself for continuous data; of ``x``
        dequantized with uniform noise (drawn from ``generator``) for discrete data."""
        return self.log_prob_flow(self.to_flow_input(x, self.dequantization_noise(x, generator)))

    def loss(self, x: Tensor, rng: BatchRandom | None = None, labels: Tensor | None = None) -> Tensor:
        """Mean negative log-likelihood per dimension, in nats (dequantized with ``rng``'s noise)."""
        if labels is not None:
            raise ValueError("labels were given to a normalizing flow, which has no class input; "
                             "unset model.num_classes")
        self.check_batch(x)
        rng = rng or BatchRandom.local(x.shape[0])
        u = rng.rand(self.shape, like=x) if self.quantization is not None else None
        return -(self.log_prob_flow(self.to_flow_input(x, u)).float()).mean() / self.dims

    # ------------------------------------------------------------------ generation and inpainting

    @torch.no_grad()
    def sample(self, n: int, *, temperature: float = 1.0, generator: torch.Generator | None = None) -> Tensor:
        """``n`` samples (n, *shape) in data space; ``temperature`` scales the prior (Glow, §5)."""
        device = next(self.parameters()).device
        flow_shape = (n, self.dims) if self.flatten else (n, *self.shape)
        z = self.prior.sample(flow_shape, generator=generator, temperature=temperature).to(device)
        y, _ = self.inverse(z)
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
