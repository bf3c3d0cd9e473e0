"""The invertible-layer protocol shared by every transform, and the shape checks they use."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn


class Transform(nn.Module):
    r"""An invertible map :math:`y = f(x)` with a tractable Jacobian determinant.

    ``forward(x) -> (y, logdet)`` with ``logdet = log|det dy/dx|`` per example, and
    ``inverse(y) -> (x, logdet)`` with ``logdet = log|det dx/dy|``, so that
    ``forward`` then ``inverse`` gives log-dets that sum to zero. This is the building block of the
    change of variables :math:`\log p(x) = \log p_Z(f(x)) + \log |\det \partial f / \partial x|`
    (Dinh et al., 2015, arXiv:1410.8516, eq. 1).

    Shapes: ``x`` is (batch, *event) with event ``(D,)`` for vectors or ``(C, H, W)`` for images;
    ``logdet`` is (batch,).
    """

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError


def sum_except_batch(x: Tensor) -> Tensor:
    """Sum over every dimension but the first: (batch, ...) -> (batch,)."""
    return x.reshape(x.shape[0], -1).sum(1)


def check_event(name: str, x: Tensor, event_shape: Sequence[int]) -> None:
    """Raise a ValueError unless ``x`` is (batch, *event_shape)."""
    event_shape = tuple(event_shape)
    if x.dim() != 1 + len(event_shape) or tuple(x.shape[1:]) != event_shape:
        raise ValueError(f"{name} expects input of shape (batch, {', '.join(map(str, event_shape))}); "
                         f"got {tuple(x.shape)}")


def check_channels(name: str, x: Tensor, channels: int, ndims: Sequence[int] = (2, 4)) -> None:
    """Raise a ValueError unless ``x`` has ``channels`` entries on dim 1 and ``x.dim()`` is one of ``ndims``."""
    if x.dim() not in ndims:
        shapes = " or ".join({2: "(batch, D)", 4: "(batch, C, H, W)"}.get(n, f"{n}-D") for n in ndims)
        raise ValueError(f"{name} expects input of shape {shapes}; got {tuple(x.shape)}")
    if x.shape[1] != channels:
        raise ValueError(f"{name} was built for {channels} channels (dim 1); got input of shape {tuple(x.shape)}")
