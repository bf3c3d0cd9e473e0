"""The one protocol every model family implements.

The training engine, the CLI and the metrics call only these methods and read
only these attributes, so they never ask whether a model is a normalizing flow
or a continuous one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor, nn

from .data.dequantize import Quantization
from .errors import UserError
from .rng import BatchRandom


class GenerativeModel(nn.Module):
    """Base class of all flowforge models.

    Attributes:
        shape: the per-example shape of the data the model was built for.
        quantization: how discrete data is dequantized, or None for continuous data.
        num_classes: the number of classes of a class-conditional model, or None.
        sample_settings: the settings :meth:`sample` takes beyond ``generator`` and ``labels``: a model that
            integrates along a time grid takes ``sampler``, ``steps``, ``grid``, ``guidance`` (and ``shape``);
            a flow sampled by its exact inverse takes none.
        inpaint_settings: the choices a user makes for :meth:`inpaint` (beyond ``generator`` and ``labels``):
            a sampler, its steps and RePaint's resampling along a path; the steps and step size of a flow's
            gradient ascent.

    These two tuples are the one place that says which options a family takes: the jobs, the command line
    and the app read them (:meth:`check_settings`) and keep no table of their own.
    """

    shape: tuple[int, ...]
    quantization: Quantization | None = None
    num_classes: int | None = None
    sample_settings: tuple[str, ...] = ()
    inpaint_settings: tuple[str, ...] = ()

    @property
    def takes_sampler(self) -> bool:
        """Whether :meth:`sample` integrates along a time grid (takes a ``sampler``) rather than inverting a
        flow exactly."""
        return "sampler" in self.sample_settings

    def check_settings(self, method: str, options: Iterable[str]) -> None:
        """Refuse, with a :class:`UserError` naming the ones it takes, the ``options`` that this model's
        ``method`` (``"sample"`` or ``"inpaint"``) does not take.

        Example:
            >>> GenerativeModel().check_settings("inpaint", ["resample"])
            Traceback (most recent call last):
            ...
            flowforge.errors.UserError: GenerativeModel inpaints with no options; resample does not apply to it
        """
        takes = {"sample": self.sample_settings, "inpaint": self.inpaint_settings}[method]
        wrong = sorted(set(options) - set(takes))
        if wrong:
            verb = "does" if len(wrong) == 1 else "do"
            raise UserError(f"{type(self).__name__} {method}s with {', '.join(takes) or 'no options'}; "
                            f"{', '.join(wrong)} {verb} not apply to it")

    @property
    def dims(self) -> int:
        """Dimensions per example, ``prod(shape)``."""
        return math.prod(self.shape)

    def loss(self, x: Tensor, rng: BatchRandom | None = None, labels: Tensor | None = None) -> Tensor:
        """Scalar training objective on a batch ``x`` (batch, *shape); ``rng`` supplies its randomness and
        ``labels`` (batch,) the classes of a class-conditional model (None otherwise)."""
        raise NotImplementedError(f"{type(self).__name__} does not define a training loss")

    def sample(self, n: int, **options: Any) -> Tensor:
        """``n`` samples, (n, *shape). An option the model does not take is an error, never ignored."""
        raise NotImplementedError(f"{type(self).__name__} cannot sample")

    def sample_with_nfe(self, n: int, **options: Any) -> tuple[Tensor, int]:
        """:meth:`sample` and the number of network evaluations it took: counted along a time grid, one pass
        for a flow's exact inverse."""
        if self.takes_sampler:
            return self.sample(n, return_nfe=True, **options)
        return self.sample(n, **options), 1

    def log_prob(self, x: Tensor, **options: Any) -> Tensor:
        """Log-density in nats per example, (batch,)."""
        raise NotImplementedError(f"{type(self).__name__} does not compute log-likelihoods")

    def inpaint(self, x: Tensor, mask: Tensor, **options: Any) -> Tensor:
        """Fill ``x`` where ``mask`` is False, keep it where True."""
        raise NotImplementedError(f"{type(self).__name__} does not inpaint")

    def bits_per_dim(self, x: Tensor, **options: Any) -> Tensor:
        """Negative log-likelihood in bits per dimension (batch,); for discrete data the dequantization bound
        on the code length of the discrete values."""
        return self.log_prob_to_bits_per_dim(self.log_prob(x, **options))

    def log_prob_to_bits_per_dim(self, log_p: Tensor) -> Tensor:
        """Bits per dimension (batch,) of examples whose :meth:`log_prob` is ``log_p``, without recomputing it.

        For discrete data ``log_p`` is the density of the dequantized point in ``[0, 1]^D``; the bin volume
        ``(1 / levels)^D`` turns it into a probability of the discrete value.
        """
        nll = -log_p
        if self.quantization is not None:
            nll = nll - self.quantization.log_bin_volume(self.dims)
        return nll / (self.dims * math.log(2))

    def check_batch(self, x: Tensor) -> None:
        """Raise a ValueError naming the problem when ``x`` is not a batch of this model's data."""
        if tuple(x.shape[1:]) != tuple(self.shape):
            raise ValueError(
                f"expected a batch of shape (batch, {', '.join(map(str, self.shape))}), got {tuple(x.shape)}"
            )

    def dequantization_noise(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor | None:
        """The preamble of every ``log_prob``: check that ``x`` is a finite batch of the model's data, and draw
        the uniform dequantization noise (x's shape) for discrete data (None for continuous data)."""
        self.check_batch(x)
        if not torch.isfinite(x).all():
            raise ValueError("x contains NaN or inf values; log_prob needs finite data")
        if self.quantization is None:
            return None
        where = generator.device if generator is not None else x.device  # drawn on the generator's device
        return torch.rand(x.shape, generator=generator, dtype=x.dtype, device=where).to(x.device)
