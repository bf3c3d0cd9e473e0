"""Glow's invertible 1x1 convolution, parameterised by an LU decomposition."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import Transform, check_channels


class InvertibleConv1x1(Transform):
    r"""Invertible 1x1 convolution in LU form (Kingma & Dhariwal, 2018, arXiv:1807.03039, §3.2, eq. 10):

    .. math::
        W = P L \bigl(U + \operatorname{diag}(\operatorname{sign}(s) \, e^{\log |s|})\bigr), \qquad
        \log |\det J| = H W \sum_c \log |s_c|,

    with ``P`` a fixed permutation, ``L`` unit lower triangular and ``U`` strictly upper triangular (``L``,
    ``U`` and ``log|s|`` learned, ``sign(s)`` fixed). ``W`` starts as a random rotation: the Q of the QR
    decomposition of a Gaussian matrix drawn from a generator seeded with ``seed`` (deterministic).

    Images (batch, C, H, W) are mixed per pixel, ``y[:, i, h, w] = sum_j W[i, j] x[:, j, h, w]``; vectors
    (batch, C) are multiplied, ``y = x W^T`` (logdet ``sum log|s|``).

    Arguments:
        num_channels: ``C``.
        seed: seed of the random initial rotation.

    Shapes: (batch, C, H, W) -> (batch, C, H, W) or (batch, C) -> (batch, C); logdet (batch,).

    Example:
        >>> layer = InvertibleConv1x1(4)
        >>> x = torch.randn(2, 4, 3, 3)
        >>> y, logdet = layer(x)
        >>> sign, logabsdet = torch.linalg.slogdet(layer.weight())
        >>> torch.allclose(logdet, 9 * logabsdet.expand(2), atol=1e-5)
        True
    """

    def __init__(self, num_channels: int, seed: int = 0):
        super().__init__()
        c = self.num_channels = int(num_channels)
        generator = torch.Generator().manual_seed(seed)
        q, _ = torch.linalg.qr(torch.randn(c, c, generator=generator, dtype=torch.float64))  # rotation
        p, lower, upper = torch.linalg.lu(q)  # q = P L U
        s = torch.diagonal(upper)
        dtype = torch.get_default_dtype()
        self.register_buffer("permutation", p.to(dtype))  # P
        self.register_buffer("sign_s", torch.sign(s).to(dtype))
        self.lower = nn.Parameter(torch.tril(lower, -1).to(dtype))  # L without its unit diagonal
        self.upper = nn.Parameter(torch.triu(upper, 1).to(dtype))  # U, strictly upper
        self.log_s = nn.Parameter(torch.log(torch.abs(s)).to(dtype))

    def _factors(self) -> tuple[Tensor, Tensor]:
        """The triangular factors ``L`` (unit diagonal) and ``U + diag(sign(s) exp(log|s|))``."""
        eye = torch.eye(self.num_channels, dtype=self.lower.dtype, device=self.lower.device)
        lower = torch.tril(self.lower, -1) + eye
        upper = torch.triu(self.upper, 1) + torch.diag(self.sign_s * torch.exp(self.log_s))
        return lower, upper

    def weight(self) -> Tensor:
        """The matrix ``W = P L U`` (C, C)."""
        lower, upper = self._factors()
        return self.permutation @ lower @ upper

    def inverse_weight(self) -> Tensor:
        """``W^{-1} = U^{-1} L^{-1} P^T`` (C, C), by triangular solves in the parameters' dtype."""
        lower, upper = self._factors()
        eye = torch.eye(self.num_channels, dtype=lower.dtype, device=lower.device)
        lower_inv = torch.linalg.solve_triangular(lower, eye, upper=False, unitriangular=True)
        return torch.linalg.solve_triangular(upper, lower_inv, upper=True) @ self.permutation.T

    def _mix(self, x: Tensor, w: Tensor) -> Tensor:
        if x.dim() == 2:
            return x @ w.T  # (B, C)
        return F.conv2d(x, w.reshape(self.num_channels, self.num_channels, 1, 1))  # (B, C, H, W)

    def _logdet(self, x: Tensor) -> Tensor:
        spatial = x.shape[2] * x.shape[3] if x.dim() == 4 else 1
        return (spatial * self.log_s.sum()).expand(x.shape[0])

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        check_channels("InvertibleConv1x1", x, self.num_channels)
        return self._mix(x, self.weight()), self._logdet(x)

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        check_channels("InvertibleConv1x1", y, self.num_channels)
        return self._mix(y, self.inverse_weight()), -self._logdet(y)
