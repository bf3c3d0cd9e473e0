"""The invertible-layer protocol shared by every transform, and the shape checks they use."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist
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


@torch.no_grad()
def pooled_moments(columns: Tensor, name: str, what: str, shape: tuple[int, ...]) -> tuple[Tensor, Tensor]:
    """Mean and (biased) standard deviation of each row of ``columns`` (rows = features, columns = values), in
    float64, pooled over all processes when ``torch.distributed`` is up: the statistics of a data-dependent
    initialisation, alike on every replica. ``name``, ``what`` and ``shape`` word the error for fewer than 2
    values per row."""
    c = columns.to(torch.float64)
    stats = torch.stack([c.sum(1), (c * c).sum(1), torch.full_like(c[:, 0], c.shape[1])])  # (3, features)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(stats)
    total, total_sq, count = stats
    if count[0] < 2:
        raise ValueError(f"{name}'s data-dependent initialisation needs at least 2 {what}; the first training "
                         f"batch has shape {shape}. Initialise on a larger batch (or call .eval() first)")
    mean = total / count
    return mean, (total_sq / count - mean * mean).clamp_min(0).sqrt()
