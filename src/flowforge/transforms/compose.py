"""A sequence of transforms applied one after the other."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch
from torch import Tensor, nn

from .base import Transform


def apply(t: nn.Module, x: Tensor, context: Tensor | None, inverse: bool = False) -> tuple[Tensor, Tensor]:
    """``t(x)`` (``t.inverse(x)`` when ``inverse``), with ``context`` handed on when there is one and ``t`` declares
    ``takes_context`` (the layers of a conditional flow :math:`p(x \\mid c)`); the other layers never see it."""
    step = t.inverse if inverse else t
    return step(x, context) if context is not None and getattr(t, "takes_context", False) else step(x)


class Compose(Transform):
    r"""The composition :math:`f = f_n \circ \dots \circ f_1`; log-dets add up (chain rule).

    ``forward`` applies the transforms in order, ``inverse`` undoes them in reverse order.

    Arguments:
        transforms: the transforms, as separate arguments or as one iterable. Kept in the
            ``nn.ModuleList`` ``self.transforms``.

    Example:
        >>> from flowforge.transforms import Reverse, Scaling
        >>> flow = Compose(Scaling((3,)), Reverse())
        >>> y, logdet = flow(torch.tensor([[1.0, 2.0, 3.0]]))
        >>> y.tolist(), logdet.tolist()
        ([[3.0, 2.0, 1.0]], [0.0])
    """

    def __init__(self, *transforms: Transform | Iterable[Transform]):
        super().__init__()
        if len(transforms) == 1 and not isinstance(transforms[0], nn.Module):
            transforms = tuple(transforms[0])
        for i, t in enumerate(transforms):
            if not isinstance(t, nn.Module):
                raise TypeError(f"Compose: item {i} is a {type(t).__name__}, not a transform (nn.Module)")
        self.transforms = nn.ModuleList(transforms)

    takes_context = True  # hands a conditional flow's context on to the layers that read it

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        logdet = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        for t in self.transforms:
            x, ld = apply(t, x, context)
            logdet = logdet + ld
        return x, logdet

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        logdet = torch.zeros(y.shape[0], dtype=y.dtype, device=y.device)
        for t in reversed(self.transforms):
            y, ld = apply(t, y, context, inverse=True)
            logdet = logdet + ld
        return y, logdet

    def __len__(self) -> int:
        return len(self.transforms)

    def __iter__(self) -> Iterator[nn.Module]:
        return iter(self.transforms)

    def __getitem__(self, i: int) -> nn.Module:
        return self.transforms[i]
