"""Exact conversions between what a network can predict on an affine path.

At a point ``x_t = alpha x0 + sigma eps`` every prediction is an affine
function of ``(x_t, E[x0 | x_t])``, so one converts to any other:

=============  =======================================  =====================================================
prediction     definition                               recovered ``(x0, eps)``
=============  =======================================  =====================================================
``x0``         ``E[x0 | x_t]`` (EDM's denoiser ``D``)     ``eps = (x_t - alpha x0) / sigma``
``eps``        ``E[eps | x_t]`` (DDPM)                   ``x0 = (x_t - sigma eps) / alpha``
``v``          ``alpha eps - sigma x0`` (Salimans & Ho)  ``x0 = (alpha x_t - sigma v) / (alpha^2 + sigma^2)``
``velocity``   ``d_alpha x0 + d_sigma eps`` (FM)          solve the 2x2 system with ``x_t``
``score``      ``grad log p_t(x_t) = -eps / sigma``      ``eps = -sigma score``
=============  =======================================  =====================================================

References: Ho et al., 2020 (arXiv:2006.11239); Salimans & Ho, 2022
(arXiv:2202.00512, eq. 4 ff.); Lipman et al., 2023 (arXiv:2210.02747);
Song et al., 2021 (arXiv:2011.13456); Karras et al., 2022 (arXiv:2206.00364).
"""

from __future__ import annotations

from typing import Literal, get_args

from torch import Tensor

from .base import PathCoefficients

Prediction = Literal["x0", "eps", "v", "velocity", "score"]
PREDICTIONS: tuple[str, ...] = get_args(Prediction)


def _check(kind: str) -> None:
    if kind not in PREDICTIONS:
        raise ValueError(f"unknown prediction {kind!r}; choose one of {', '.join(PREDICTIONS)}")


def to_x0_eps(pred: Tensor, kind: str, x_t: Tensor, c: PathCoefficients) -> tuple[Tensor, Tensor]:
    """``(E[x0 | x_t], E[eps | x_t])`` from a prediction of ``kind`` at ``x_t`` with coefficients ``c``."""
    _check(kind)
    if kind == "x0":
        return pred, (x_t - c.alpha * pred) / c.sigma
    if kind in ("eps", "score"):
        eps = pred if kind == "eps" else -c.sigma * pred
        return (x_t - c.sigma * eps) / c.alpha, eps
    if kind == "v":
        x0 = (c.alpha * x_t - c.sigma * pred) / (c.alpha.square() + c.sigma.square())
        return x0, (x_t - c.alpha * x0) / c.sigma
    # velocity u = d_alpha x0 + d_sigma eps with x_t = alpha x0 + sigma eps
    det = c.alpha * c.d_sigma - c.sigma * c.d_alpha
    return (c.d_sigma * x_t - c.sigma * pred) / det, (c.alpha * pred - c.d_alpha * x_t) / det


def from_x0_eps(x0: Tensor, eps: Tensor, kind: str, c: PathCoefficients) -> Tensor:
    """The prediction of ``kind`` implied by ``(x0, eps)`` under coefficients ``c``."""
    _check(kind)
    if kind == "x0":
        return x0
    if kind == "eps":
        return eps
    if kind == "score":
        return -eps / c.sigma
    if kind == "v":
        return c.alpha * eps - c.sigma * x0
    return c.d_alpha * x0 + c.d_sigma * eps


def convert(pred: Tensor, src: str, dst: str, x_t: Tensor, c: PathCoefficients) -> Tensor:
    """Convert a prediction of kind ``src`` at ``x_t`` into kind ``dst``.

    Example:
        >>> import torch
        >>> from flowforge.paths import LinearPath
        >>> c = LinearPath().coefficients(torch.tensor([0.5]))
        >>> x0, eps = torch.tensor([1.0]), torch.tensor([-1.0])
        >>> x_t = c.alpha * x0 + c.sigma * eps
        >>> convert(eps - x0, "velocity", "x0", x_t, c)
        tensor([1.])
    """
    if src == dst:
        _check(src)
        return pred
    x0, eps = to_x0_eps(pred, src, x_t, c)
    return from_x0_eps(x0, eps, dst, c)
