"""MADE: a masked MLP whose outputs are autoregressive in its inputs (the conditioner of MAF and NSF (AR))."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def made_degrees(order: Tensor, hidden: int) -> Tensor:
    """Degrees of ``hidden`` units for inputs of degrees ``order`` (a permutation of 1..D): cycling through
    ``1 .. D - 1`` (0 when D = 1, so the units see only the context), the deterministic choice that gives every
    degree the same number of units (Germain et al., 2015, arXiv:1502.03509, §4.2).

    Example:
        >>> made_degrees(torch.tensor([1, 2, 3]), 5).tolist()
        [1, 2, 1, 2, 1]
    """
    d = len(order)
    return torch.arange(hidden) % max(d - 1, 1) + min(d - 1, 1)


class MaskedLinear(nn.Linear):
    """``y = x (W * M)^T + b`` with a fixed 0/1 ``mask`` (out, in)."""

    def __init__(self, in_features: int, out_features: int, mask: Tensor):
        super().__init__(in_features, out_features)
        self.register_buffer("mask", mask.to(self.weight.dtype))

    def forward(self, x: Tensor) -> Tensor:
        return nn.functional.linear(x, self.weight * self.mask, self.bias)


class MADE(nn.Module):
    r"""Masked autoencoder for distribution estimation (Germain et al., 2015, arXiv:1502.03509, eqs. 12-13):
    output ``i`` (``params`` numbers) depends only on the inputs of lower degree, so the layer it drives has a
    triangular Jacobian in the order ``order``.

    Unit ``k`` of a hidden layer has degree :math:`m(k)`; a hidden weight is kept iff
    :math:`m^{l}(k) \ge m^{l-1}(k')`, an output weight iff :math:`m_{out}(i) > m^{L}(k)`, where the outputs of
    input ``i`` have its degree ``order[i]``. A context vector (a conditional flow) enters the first hidden layer
    unmasked, so every output may depend on it.

    Arguments:
        features: ``D``.
        params: outputs per feature.
        hidden: width of each hidden layer (at least ``D - 1`` for every output to see all its inputs).
        layers: hidden layers.
        order: the degrees of the inputs, a permutation of ``1..D``; None is ``1..D``.
        context: size of the context vector, 0 for none.
        activation: the hidden non-linearity.

    The output layer starts at zero, so a flow of MADE-driven layers starts at the identity.

    Shapes: x (batch, D), context (batch, context) or None -> (batch, D, params).

    Example:
        >>> net = MADE(3, params=2, hidden=8, layers=2, order=torch.tensor([3, 1, 2]))
        >>> net(torch.randn(4, 3)).shape
        torch.Size([4, 3, 2])
    """

    def __init__(self, features: int, params: int, hidden: int = 64, layers: int = 2, order: Tensor | None = None,
                 context: int = 0, activation: type[nn.Module] = nn.ReLU):
        super().__init__()
        order = torch.arange(1, features + 1) if order is None else torch.as_tensor(order)
        if layers < 1:
            raise ValueError(f"MADE needs at least one hidden layer; got layers={layers}")
        if sorted(order.tolist()) != list(range(1, features + 1)):
            raise ValueError(f"MADE: order must be a permutation of 1..{features}; got {order.tolist()}")
        self.features, self.params, self.context = features, params, context
        self.register_buffer("order", order.clone())
        degrees = [order] + [made_degrees(order, hidden) for _ in range(layers)]
        body: list[nn.Module] = []
        for d_in, d_out in zip(degrees, degrees[1:]):
            body += [MaskedLinear(len(d_in), hidden, (d_out[:, None] >= d_in[None, :]).float()), activation()]
        self.body = nn.Sequential(*body)
        self.context_in = nn.Linear(context, hidden, bias=False) if context else None
        d_out = order.repeat_interleave(params)  # output unit i * params + p belongs to feature i
        self.out = MaskedLinear(hidden, features * params, (d_out[:, None] > degrees[-1][None, :]).float())
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        h = self.body[0](x)  # (B, hidden)
        if self.context_in is not None:
            if context is None:
                raise ValueError(f"MADE was built for a context of size {self.context}; none was given")
            h = h + self.context_in(context)
        elif context is not None:
            raise ValueError("MADE was built without a context (context=0); a context was given")
        h = self.body[1:](h)
        return self.out(h).reshape(x.shape[0], self.features, self.params)  # (B, D, P)


__all__ = ["MADE", "MaskedLinear", "made_degrees"]
