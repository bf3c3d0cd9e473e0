"""The one protocol every model family implements.

The training engine, the CLI and the metrics call only these methods, so they
never ask whether a model is a normalizing flow or a continuous one.
"""

from __future__ import annotations

from torch import Tensor, nn

from .rng import BatchRandom


class GenerativeModel(nn.Module):
    """Base class of all flowforge models.

    ``shape`` is the per-example shape of the data the model was built for.
    """

    shape: tuple[int, ...]

    def loss(self, x: Tensor, rng: BatchRandom | None = None) -> Tensor:
        """Scalar training objective on a batch ``x`` (batch, *shape); ``rng`` supplies its randomness.

        Class-conditional models also take ``labels`` (batch,) as a keyword; the engine passes them only
        when ``model.num_classes`` is set.
        """
        raise NotImplementedError(f"{type(self).__name__} does not define a training loss")

    def sample(self, n: int, **options) -> Tensor:
        """``n`` samples, (n, *shape)."""
        raise NotImplementedError(f"{type(self).__name__} cannot sample")

    def log_prob(self, x: Tensor, **options) -> Tensor:
        """Log-density in nats per example, (batch,)."""
        raise NotImplementedError(f"{type(self).__name__} does not compute log-likelihoods yet")

    def bits_per_dim(self, x: Tensor, **options) -> Tensor:
        """Negative log-likelihood in bits per dimension (batch,), dequantization-aware for discrete data."""
        raise NotImplementedError(f"{type(self).__name__} does not compute log-likelihoods yet")

    def log_prob_to_bits_per_dim(self, log_p: Tensor) -> Tensor:
        """Bits per dimension (batch,) from this model's ``log_prob`` values, without recomputing them."""
        raise NotImplementedError(f"{type(self).__name__} does not compute log-likelihoods yet")

    def inpaint(self, x: Tensor, mask: Tensor, **options) -> Tensor:
        """Fill ``x`` where ``mask`` is False, keep it where True."""
        raise NotImplementedError(f"{type(self).__name__} does not inpaint yet")

    def check_batch(self, x: Tensor) -> None:
        """Raise a ValueError naming the problem when ``x`` is not a batch of this model's data."""
        if tuple(x.shape[1:]) != tuple(self.shape):
            raise ValueError(
                f"expected a batch of shape (batch, {', '.join(map(str, self.shape))}), got {tuple(x.shape)}"
            )
