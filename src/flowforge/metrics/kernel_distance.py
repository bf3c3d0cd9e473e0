"""Kernel distance: the unbiased MMD^2 with a cubic polynomial kernel (KID in Inception features).

Binkowski et al. (2018) score samples by the squared maximum mean discrepancy
(Gretton et al., 2012) between feature sets ``x`` and ``y`` under the kernel

.. math:: k(a, b) = \\left(\\tfrac{1}{D} a^\\top b + 1\\right)^3

with ``D`` the feature dimension, estimated without bias (Gretton et al., Lemma 6):

.. math:: \\widehat{\\mathrm{MMD}}^2_u = \\frac{1}{m(m-1)} \\sum_{i \\ne j} k(x_i, x_j)
          + \\frac{1}{m(m-1)} \\sum_{i \\ne j} k(y_i, y_j) - \\frac{2}{m^2} \\sum_{i, j} k(x_i, y_j)

Its expectation is exactly 0 when both sets come from one distribution, so unlike
the Fréchet distance it has no sample-size bias and can be negative.

Subsets. The estimate costs ``O(m^2 D)``, so, as in the paper, it is averaged over
subsets of ``m`` points each. Here the subsets are **disjoint** (each point is used
once): their estimates are then independent, and ``std / sqrt(n_subsets)`` is an
honest standard error of the mean. (The reference implementations draw subsets
that overlap, whose spread only measures the subset-sampling noise; their mean
has the same expectation.) In Inception features the value is the literature's KID,
usually reported x 1000.

References:
    Binkowski, Sutherland, Arbel & Gretton, "Demystifying MMD GANs", ICLR 2018, https://arxiv.org/abs/1801.01401
    Gretton et al., "A Kernel Two-Sample Test", JMLR 2012.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class KernelDistance:
    """Mean of the per-subset unbiased MMD^2 estimates, its standard error, and the subsets used."""

    mean: float
    stderr: float  # std over subsets / sqrt(n_subsets); nan for a single subset
    n_subsets: int
    subset_size: int


def polynomial_kernel(a: Tensor, b: Tensor) -> Tensor:
    """``(a b^T / D + 1)^3`` for ``a`` (n, D), ``b`` (m, D) -> (n, m)."""
    return (a @ b.T / a.shape[1] + 1) ** 3


def mmd2_unbiased(x: Tensor, y: Tensor) -> float:
    """The unbiased estimate ``MMD^2_u`` (module docstring) between ``x`` (m, D) and ``y`` (m, D)."""
    m = x.shape[0]
    k_xx, k_yy, k_xy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)  # (m, m) each
    within = (k_xx.sum() - k_xx.diagonal().sum() + k_yy.sum() - k_yy.diagonal().sum()) / (m * (m - 1))
    return float(within - 2 * k_xy.mean())


def kernel_distance(
    x: Tensor, y: Tensor, *, max_subset_size: int = 1000, min_subsets: int = 10, seed: int = 0
) -> KernelDistance:
    """Unbiased polynomial-kernel MMD^2 between features ``x`` (n, D) and ``y`` (n', D), over disjoint subsets.

    Both sets are shuffled (``seed``) and cut into ``B`` disjoint pairs of subsets of
    ``m = min(max_subset_size, min(n, n') // min_subsets)`` points each, with
    ``B = min(n, n') // m`` (so at least ``min_subsets``); points beyond ``B m`` are unused.
    E.g. 1000 vs 10000 points: 10 subsets of 100; 50000 vs 50000: 50 subsets of 1000.

    Returns a :class:`KernelDistance`: the mean over subsets and its standard error.
    """
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"expected features (n, D) and (m, D), got {tuple(x.shape)} and {tuple(y.shape)}")
    if max_subset_size < 2 or min_subsets < 1:
        raise ValueError(f"need max_subset_size >= 2 and min_subsets >= 1, got {max_subset_size}, {min_subsets}")
    n = min(x.shape[0], y.shape[0])
    m = min(max_subset_size, n // min_subsets)
    if m < 2:
        raise ValueError(f"{n} points cannot fill {min_subsets} subsets of at least 2; pass more points")
    n_subsets = n // m
    gen = torch.Generator().manual_seed(seed)
    x = x.double()[torch.randperm(x.shape[0], generator=gen)[: n_subsets * m]]  # (B m, D)
    y = y.double()[torch.randperm(y.shape[0], generator=gen)[: n_subsets * m]]  # (B m, D)
    values = torch.tensor([mmd2_unbiased(xb, yb) for xb, yb in zip(x.split(m), y.split(m), strict=True)],
                          dtype=torch.float64)  # (B,): the estimates are float64; torch.tensor's default would round
    stderr = float(values.std() / math.sqrt(n_subsets)) if n_subsets > 1 else math.nan
    return KernelDistance(mean=float(values.mean()), stderr=stderr, n_subsets=n_subsets, subset_size=m)
