"""Masked autoregressive layers (MAF) and the inverse direction of any transform (IAF)."""

from __future__ import annotations

from torch import Tensor, nn

from .base import Transform
from .elementwise import ElementwiseMap, check_raw


class MaskedAutoregressive(Transform):
    r"""An autoregressive layer ``z_i = g(x_i; \theta_i(x_{<i}, c))`` (Papamakarios et al., 2017, arXiv:1705.07057,
    §3.1; with a spline ``g``, RQ-NSF (AR), Durkan et al., 2019, arXiv:1906.04032, §3.2):

    .. math:: \log|\det J| = \sum_i \log |g'(x_i; \theta_i)|,

    where ``<i`` is with respect to the conditioner's order. One conditioner pass gives every ``theta_i`` in
    the density direction (``forward``, data -> latent); the inverse needs ``D`` passes, one more feature fixed
    by each, since ``theta_i`` needs the ``x_{<i}`` it is computing.

    Arguments:
        features: ``D``.
        conditioner: a masked network ``(x (batch, D), context or None) -> raw (batch, D, map.params)`` whose
            output ``i`` depends only on the inputs before ``i`` in its order, e.g.
            :class:`flowforge.nets.MADE`.
        map: the elementwise map (:mod:`.elementwise`).

    Shapes: (batch, D) -> (batch, D), logdet (batch,); context (batch, C) or None.

    Example:
        >>> import torch
        >>> from flowforge.transforms import MonotonicAffine
        >>> class FirstShiftsSecond(torch.nn.Module):  # theta_2 = (x_1, 0): an autoregressive conditioner
        ...     def forward(self, x, context):
        ...         raw = torch.zeros(x.shape[0], 2, 2)
        ...         raw[:, 1, 0] = x[:, 0]
        ...         return raw
        >>> layer = MaskedAutoregressive(2, FirstShiftsSecond(), MonotonicAffine())
        >>> z, _ = layer(torch.tensor([[1.0, 2.0]]))
        >>> z.tolist(), layer.inverse(z)[0].tolist()
        ([[1.0, 3.0]], [[1.0, 2.0]])
    """

    takes_context = True

    def __init__(self, features: int, conditioner: nn.Module, map: ElementwiseMap):
        super().__init__()
        self.features = int(features)
        self.conditioner = conditioner
        self.map = map

    def _raw(self, x: Tensor, context: Tensor | None) -> Tensor:
        if x.dim() != 2 or x.shape[1] != self.features:
            raise ValueError(f"MaskedAutoregressive was built for (batch, {self.features}); got {tuple(x.shape)}")
        raw = self.conditioner(x, context)  # (B, D, P)
        check_raw("MaskedAutoregressive", raw, x.shape[0], self.features, self.map.params)
        return raw

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        z, log_grad = self.map(x, self._raw(x, context))
        return z, log_grad.sum(1)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x = z.new_zeros(z.shape)
        for _ in range(self.features):  # pass i fixes the feature of rank i in the order (and keeps the earlier)
            x, log_grad = self.map(z, self._raw(x, context), inverse=True)
        return x, log_grad.sum(1)


class Inverted(Transform):
    """The inverse of ``transform``: ``forward`` is its ``inverse`` and the other way round.

    A masked autoregressive layer inverted is the inverse autoregressive flow (IAF, Kingma et al., 2016,
    arXiv:1606.04934): sampling in one pass, density in ``D``.

    Example:
        >>> import torch
        >>> from flowforge.transforms import Scaling
        >>> layer = Scaling((2,))
        >>> torch.equal(Inverted(layer)(torch.ones(1, 2))[0], layer.inverse(torch.ones(1, 2))[0])
        True
    """

    def __init__(self, transform: Transform):
        super().__init__()
        self.transform = transform
        self.takes_context = getattr(transform, "takes_context", False)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self.transform.inverse(x, context) if self.takes_context else self.transform.inverse(x)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self.transform(y, context) if self.takes_context else self.transform(y)


__all__ = ["Inverted", "MaskedAutoregressive"]
