"""Improved precision and recall (Kynkäänniemi et al., 2019): k-nearest-neighbour manifolds in feature space.

The manifold of a feature set ``Phi`` is the union of balls, one around each of its
points ``phi`` with radius the distance from ``phi`` to its k-th nearest neighbour
in ``Phi`` (the point itself not counted):

.. math:: f(\\phi', \\Phi) = 1 \\text{ if } \\lVert \\phi' - \\phi \\rVert_2 \\le
          \\lVert \\phi - \\mathrm{NN}_k(\\phi, \\Phi) \\rVert_2 \\text{ for some } \\phi \\in \\Phi

.. math:: \\text{precision} = \\frac{1}{|\\Phi_g|} \\sum_{\\phi_g} f(\\phi_g, \\Phi_r), \\qquad
          \\text{recall} = \\frac{1}{|\\Phi_r|} \\sum_{\\phi_r} f(\\phi_r, \\Phi_g)

Precision is the share of generated samples that look real (fidelity); recall the
share of real samples the generator covers (diversity): a generator that drops
modes keeps its precision and loses recall. The paper uses k = 3 and equally many
real and generated samples (the radii shrink as a set grows, so unequal sizes bias
both numbers).

Distances are computed in float64, a block of rows at a time, so memory holds at
most ``chunk`` x ``len(Phi)`` distances, never the full matrices.

Reference:
    Kynkäänniemi, Karras, Laine, Lehtinen & Aila, "Improved Precision and Recall Metric for Assessing
    Generative Models", NeurIPS 2019, https://arxiv.org/abs/1904.06991
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

CHUNK_ELEMENTS = 1 << 22  # distances held at once: 4M float64 = 32 MiB


@dataclass(frozen=True)
class PrecisionRecall:
    precision: float
    recall: float
    k: int


def _squared_distances(a: Tensor, b: Tensor, b_sq: Tensor) -> Tensor:
    """``|a_i - b_j|^2`` for ``a`` (c, D), ``b`` (n, D) with ``b_sq = |b_j|^2`` (n,) -> (c, n), clipped at 0."""
    return (a.square().sum(1, keepdim=True) + b_sq - 2 * a @ b.T).clamp_(min=0)


def _chunk_rows(n: int, chunk: int | None) -> int:
    return chunk if chunk is not None else max(1, CHUNK_ELEMENTS // max(n, 1))


def knn_radii(phi: Tensor, k: int = 3, *, chunk: int | None = None) -> Tensor:
    """Squared distance from each row of ``phi`` (n, D) to its k-th nearest other row -> (n,) float64."""
    if not 1 <= k < phi.shape[0]:
        raise ValueError(f"k must be in [1, n - 1] for n = {phi.shape[0]} points, got k = {k}")
    phi = phi.double()
    sq = phi.square().sum(1)  # (n,)
    rows = _chunk_rows(phi.shape[0], chunk)
    radii = []
    for start in range(0, phi.shape[0], rows):
        d2 = _squared_distances(phi[start:start + rows], phi, sq)  # (c, n)
        # the k+1 smallest include the point itself (0); the largest of them is the k-th neighbour
        radii.append(d2.topk(k + 1, dim=1, largest=False).values[:, -1])
    return torch.cat(radii)


def in_manifold(query: Tensor, phi: Tensor, radii: Tensor, *, chunk: int | None = None) -> Tensor:
    """For each row of ``query`` (m, D): inside some ball ``|q - phi_j|^2 <= radii_j`` of ``phi`` (n, D)? -> (m,) bool."""
    query, phi = query.double(), phi.double()
    sq = phi.square().sum(1)  # (n,)
    rows = _chunk_rows(phi.shape[0], chunk)
    inside = [
        (_squared_distances(query[start:start + rows], phi, sq) <= radii).any(1)  # (c, n) -> (c,)
        for start in range(0, query.shape[0], rows)
    ]
    return torch.cat(inside)


def precision_recall(real: Tensor, fake: Tensor, k: int = 3, *, chunk: int | None = None) -> PrecisionRecall:
    """Improved precision and recall of ``fake`` (m, D) against ``real`` (n, D) (module docstring).

    ``chunk``: rows per block of distances (default: as many as fit ``CHUNK_ELEMENTS``).
    """
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"expected features (n, D) and (m, D), got {tuple(real.shape)} and {tuple(fake.shape)}")
    precision = in_manifold(fake, real, knn_radii(real, k, chunk=chunk), chunk=chunk).double().mean()
    recall = in_manifold(real, fake, knn_radii(fake, k, chunk=chunk), chunk=chunk).double().mean()
    return PrecisionRecall(precision=float(precision), recall=float(recall), k=k)
