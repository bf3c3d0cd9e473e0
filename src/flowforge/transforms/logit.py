"""RealNVP's logit pre-processing of data in [0, 1]."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import Transform, sum_except_batch


class Logit(Transform):
    r"""Map data in [0, 1] to the real line (Dinh et al., 2017, arXiv:1605.08803, §4.1):

    .. math::
        p = \alpha + (1 - 2\alpha) y, \qquad x = \operatorname{logit}(p) = \log p - \log(1 - p),
        \qquad \log |\det J| = \sum \bigl[\log(1 - 2\alpha) - \log p - \log(1 - p)\bigr].

    ``alpha`` keeps ``p`` away from 0 and 1 so the logit stays finite (the paper uses 0.05). The inverse is
    ``y = (sigmoid(x) - alpha) / (1 - 2 alpha)``; it maps all of R onto (-alpha, 1 + alpha) / (1 - 2 alpha),
    a little wider than [0, 1], so clip samples before displaying them.

    Arguments:
        alpha: in [0, 0.5); with ``alpha = 0`` the input must lie in the open interval (0, 1).

    Shapes: (batch, *event) -> (batch, *event), logdet (batch,).

    Raises:
        ValueError: on non-finite input, or input outside [0, 1] (naming the observed min and max).

    Example:
        >>> layer = Logit(alpha=0.05)
        >>> x, logdet = layer(torch.tensor([[0.0, 0.5, 1.0]]))
        >>> [round(v, 4) for v in x.flatten().tolist()]
        [-2.9444, 0.0, 2.9444]
    """

    def __init__(self, alpha: float = 0.05):
        super().__init__()
        if not 0.0 <= alpha < 0.5:
            raise ValueError(f"Logit: alpha must lie in [0, 0.5); got {alpha}")
        self.alpha = float(alpha)

    def _check(self, y: Tensor) -> None:
        if y.dim() < 2:
            raise ValueError(f"Logit expects input of shape (batch, *event); got {tuple(y.shape)}")
        lo, hi = (float(v) for v in torch.aminmax(y.detach()))
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise ValueError(f"Logit: the input has non-finite values (observed min {lo}, max {hi})")
        if self.alpha == 0.0 and (lo <= 0.0 or hi >= 1.0):
            raise ValueError(f"Logit with alpha=0 needs input in the open interval (0, 1); observed min {lo}, "
                             f"max {hi}. Use alpha > 0 for data that reaches 0 or 1")
        if lo < 0.0 or hi > 1.0:
            raise ValueError(f"Logit needs input in [0, 1] (dequantized data scaled to the unit interval); "
                             f"observed min {lo}, max {hi}")

    def forward(self, y: Tensor) -> tuple[Tensor, Tensor]:
        self._check(y)
        p = self.alpha + (1 - 2 * self.alpha) * y
        log_p, log_1mp = torch.log(p), torch.log1p(-p)
        x = log_p - log_1mp
        return x, sum_except_batch(math.log(1 - 2 * self.alpha) - log_p - log_1mp)

    def inverse(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if x.dim() < 2:
            raise ValueError(f"Logit.inverse expects input of shape (batch, *event); got {tuple(x.shape)}")
        p = torch.sigmoid(x)
        y = (p - self.alpha) / (1 - 2 * self.alpha)
        log_p, log_1mp = F.logsigmoid(x), F.logsigmoid(-x)
        return y, sum_except_batch(log_p + log_1mp - math.log(1 - 2 * self.alpha))
