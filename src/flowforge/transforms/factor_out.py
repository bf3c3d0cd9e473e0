"""RealNVP's multi-scale split: factor out part of the channels, transform the rest."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import Transform
from .compose import apply


class FactorOut(Transform):
    r"""Factor out the first ``keep`` channels and apply ``inner`` to the others (Dinh et al., 2017,
    arXiv:1605.08803, §3.6, eq. 13-15; Glow's split, arXiv:1807.03039, Fig. 2):

    .. math:: (z_1, h) = (x_{1:k}, x_{k+1:C}), \qquad y = \bigl(z_1, \; f_{\text{inner}}(h)\bigr).

    The factored-out channels pass through unchanged, i.e. they go straight to the prior, so the next scale
    costs less. Everything stays one tensor of ``x``'s shape: ``inner`` may :class:`Squeeze`, but must end
    with the shape it was given (close a squeeze with :class:`Unsqueeze`). ``logdet`` is ``inner``'s.

    Arguments:
        inner: the transform of the remaining ``C - keep`` channels.
        keep: number of channels factored out (along dim 1); ``C // 2`` when None.

    Shapes: (batch, C, *spatial) -> (batch, C, *spatial), logdet (batch,).

    Example:
        >>> from flowforge.transforms import Scaling
        >>> layer = FactorOut(Scaling((2, 2, 2)))
        >>> x = torch.randn(1, 4, 2, 2)
        >>> y, logdet = layer(x)
        >>> torch.equal(y[:, :2], x[:, :2]), tuple(y.shape)
        (True, (1, 4, 2, 2))
    """

    def __init__(self, inner: nn.Module, keep: int | None = None):
        super().__init__()
        if keep is not None and int(keep) < 1:
            raise ValueError(f"FactorOut: keep must be a positive number of channels; got {keep}")
        self.inner = inner
        self.keep = None if keep is None else int(keep)

    def _split(self, name: str, x: Tensor) -> tuple[Tensor, Tensor]:
        if x.dim() < 2:
            raise ValueError(f"{name} expects input of shape (batch, C, ...); got {tuple(x.shape)}")
        c = x.shape[1]
        k = c // 2 if self.keep is None else self.keep
        if not 1 <= k < c:
            raise ValueError(f"{name}: cannot factor out {k} of {c} channels (input shape {tuple(x.shape)}); "
                             f"at least one channel must remain for the inner transform")
        return x[:, :k], x[:, k:]

    def _join(self, name: str, z1: Tensor, h_in: Tensor, h_out: Tensor) -> Tensor:
        if h_out.shape != h_in.shape:
            raise ValueError(f"{name}: the inner transform must keep the shape it is given, {tuple(h_in.shape)}; "
                             f"it returned {tuple(h_out.shape)} (end a Squeeze with an Unsqueeze)")
        return torch.cat([z1, h_out], dim=1)  # (B, C, *spatial)

    takes_context = True  # a conditional flow's context goes on to ``inner``

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        z1, h = self._split("FactorOut", x)  # (B, k, ...), (B, C - k, ...)
        h_out, logdet = apply(self.inner, h, context)
        return self._join("FactorOut", z1, h, h_out), logdet

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        z1, h = self._split("FactorOut.inverse", y)
        h_out, logdet = apply(self.inner, h, context, inverse=True)
        return self._join("FactorOut.inverse", z1, h, h_out), logdet
