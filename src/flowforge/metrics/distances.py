"""Distances between two samples of points (flattened to (n, d)).

These compare a model's samples with draws of the true distribution; each is
zero when the two distributions are equal, up to sampling noise (the "noise
floor", measured by comparing two independent true samples).
"""

from __future__ import annotations

import torch
from torch import Tensor


def _flat(x: Tensor) -> Tensor:
    if x.dim() < 2 or x.shape[0] < 2:
        raise ValueError(f"expected a sample of at least 2 points (n, ...), got shape {tuple(x.shape)}")
    x = x.reshape(x.shape[0], -1).double()
    if not torch.isfinite(x).all():
        raise ValueError("sample contains NaN or inf values")
    return x


def _mean_dist(x: Tensor, y: Tensor, chunk: int = 2048) -> Tensor:
    """``E |X - Y|`` over all pairs (a V-statistic), in chunks to bound memory."""
    total = x.new_zeros(())
    for i in range(0, x.shape[0], chunk):
        total = total + torch.cdist(x[i:i + chunk], y).sum()
    return total / (x.shape[0] * y.shape[0])


def energy_distance(x: Tensor, y: Tensor) -> float:
    """Energy distance (Székely & Rizzo, 2013), V-statistic form.

    .. math:: D(X, Y) = 2\\,\\mathbb E\\lVert X - Y\\rVert - \\mathbb E\\lVert X - X'\\rVert - \\mathbb E\\lVert Y - Y'\\rVert

    Shapes: ``x`` (n, ...), ``y`` (m, ...) with the same trailing shape.
    """
    x, y = _flat(x), _flat(y)
    return float(2 * _mean_dist(x, y) - _mean_dist(x, x) - _mean_dist(y, y))


def sliced_wasserstein2(x: Tensor, y: Tensor, n_projections: int = 1000, seed: int = 0) -> float:
    """Sliced Wasserstein-2 distance (Rabin et al., 2011).

    Projects both samples on ``n_projections`` random unit directions, matches
    sorted projections (the exact 1-D optimal transport, after resampling both
    to the same quantile grid when sizes differ) and returns
    ``sqrt(mean over directions of mean squared difference)``.
    """
    x, y = _flat(x), _flat(y)
    gen = torch.Generator().manual_seed(seed)
    theta = torch.randn(x.shape[1], n_projections, generator=gen, dtype=torch.float64)
    theta = theta / theta.norm(dim=0, keepdim=True)  # (d, P)
    px, _ = torch.sort(x @ theta, dim=0)  # (n, P)
    py, _ = torch.sort(y @ theta, dim=0)  # (m, P)
    if px.shape[0] != py.shape[0]:
        q = (torch.arange(1000, dtype=torch.float64) + 0.5) / 1000
        px, py = torch.quantile(px, q, dim=0), torch.quantile(py, q, dim=0)
    return float((px - py).square().mean().sqrt())


def wasserstein2(x: Tensor, y: Tensor) -> float:
    """Exact Wasserstein-2 distance between two empirical measures with uniform weights.

    Solves the optimal-transport linear program with POT's network simplex
    (``ot.emd2``) on the squared Euclidean cost: O(n^3), use for a few thousand points at most.
    """
    import ot

    x, y = _flat(x), _flat(y)
    cost = torch.cdist(x, y).square().numpy()
    a = torch.full((x.shape[0],), 1.0 / x.shape[0], dtype=torch.float64).numpy()
    b = torch.full((y.shape[0],), 1.0 / y.shape[0], dtype=torch.float64).numpy()
    return float(ot.emd2(a, b, cost, numItermax=10_000_000)) ** 0.5


def matched_gaussian(data: Tensor, n: int, seed: int = 0) -> Tensor:
    """``n`` draws of the Gaussian with ``data``'s mean and covariance (a trivial baseline model)."""
    flat = _flat(data)
    mean = flat.mean(0)
    cov = torch.cov(flat.T).reshape(flat.shape[1], flat.shape[1])
    # a tiny jitter keeps the Cholesky factor defined for degenerate (e.g. constant-pixel) data
    jitter = 1e-9 * cov.diagonal().mean().clamp_min(1e-12)
    chol = torch.linalg.cholesky(cov + jitter * torch.eye(cov.shape[0], dtype=cov.dtype))
    z = torch.randn(n, flat.shape[1], generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return (mean + z @ chol.T).float().reshape(n, *data.shape[1:])
