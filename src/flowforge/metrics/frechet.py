"""Fréchet distance between two sets of features, through their means and covariances.

The Fréchet (Wasserstein-2) distance between the Gaussians ``N(mu_1, Sigma_1)`` and
``N(mu_2, Sigma_2)`` fitted to two feature sets is (Dowson & Landau, 1982):

.. math:: d^2 = \\lVert \\mu_1 - \\mu_2 \\rVert^2
          + \\operatorname{tr}\\bigl(\\Sigma_1 + \\Sigma_2 - 2 (\\Sigma_1 \\Sigma_2)^{1/2}\\bigr)

Computed in Inception-v3 features this is the FID (Heusel et al., 2017); in the
features of any other network it is called FD here, because its numbers are not
comparable with the literature's FID.

``Sigma_1 Sigma_2`` is not symmetric when the covariances do not commute, and
``scipy.linalg.sqrtm`` of it (the pytorch-fid recipe) can return complex or
non-finite roots when a covariance is singular (dead ReLU units, fewer samples than
dimensions). Only the trace of the root is needed, and

.. math:: \\operatorname{tr} (\\Sigma_1 \\Sigma_2)^{1/2}
          = \\operatorname{tr} (\\Sigma_1^{1/2} \\Sigma_2 \\Sigma_1^{1/2})^{1/2}
          = \\sum_i \\sqrt{\\lambda_i(\\Sigma_1^{1/2} \\Sigma_2 \\Sigma_1^{1/2})}

because ``Sigma_1 Sigma_2`` and ``Sigma_1^(1/2) Sigma_2 Sigma_1^(1/2)`` are similar
(when Sigma_1 is invertible; by continuity otherwise). The right-hand matrix is
symmetric positive semi-definite, so two symmetric eigendecompositions in float64
give the trace without complex arithmetic, singular covariances included.

References:
    Dowson & Landau, "The Fréchet distance between multivariate normal distributions", J. Multivariate Anal. 1982.
    Heusel et al., "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash Equilibrium",
    NeurIPS 2017, https://arxiv.org/abs/1706.08500
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class FeatureStats:
    """Mean ``mu`` (D,) and unbiased covariance ``sigma`` (D, D), float64, of ``n`` feature vectors."""

    mu: Tensor
    sigma: Tensor
    n: int


def feature_stats(features: Tensor) -> FeatureStats:
    """Mean and covariance (divisor ``n - 1``, as ``numpy.cov``) of features ``(n, D)``, in float64."""
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"expected features (n, D) with n >= 2, got shape {tuple(features.shape)}")
    f = features.double()
    if not torch.isfinite(f).all():
        raise ValueError("features contain NaN or inf values")
    return FeatureStats(mu=f.mean(0), sigma=torch.cov(f.T).reshape(f.shape[1], f.shape[1]), n=f.shape[0])


def _psd_sqrt(a: Tensor) -> Tensor:
    """Symmetric square root of a symmetric positive semi-definite matrix (negative rounding noise clipped)."""
    evals, evecs = torch.linalg.eigh(a)  # (D,), (D, D)
    return (evecs * evals.clamp(min=0).sqrt()) @ evecs.T


def frechet_distance_from_stats(mu1: Tensor, sigma1: Tensor, mu2: Tensor, sigma2: Tensor) -> float:
    """Fréchet distance ``d^2`` (module docstring) between ``N(mu1, sigma1)`` and ``N(mu2, sigma2)``.

    Arguments:
        mu1, mu2: means, shape ``(D,)``.
        sigma1, sigma2: covariances, shape ``(D, D)``, symmetric positive semi-definite.

    Returns the squared distance as a float (clipped at 0 against rounding), computed in float64.

    Example:
        >>> import torch
        >>> eye = torch.eye(2)
        >>> frechet_distance_from_stats(torch.zeros(2), eye, torch.tensor([3.0, 4.0]), 4 * eye)
        27.0
    """
    mu1, mu2, sigma1, sigma2 = (torch.as_tensor(t).double() for t in (mu1, mu2, sigma1, sigma2))
    d = mu1.shape[0]
    if mu1.shape != (d,) or mu2.shape != (d,) or sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise ValueError(
            f"expected means (D,) and covariances (D, D) of one D; got {tuple(mu1.shape)}, {tuple(sigma1.shape)}, "
            f"{tuple(mu2.shape)}, {tuple(sigma2.shape)}"
        )
    sigma1, sigma2 = (sigma1 + sigma1.T) / 2, (sigma2 + sigma2.T) / 2
    root1 = _psd_sqrt(sigma1)  # Sigma_1^(1/2), (D, D)
    inner = root1 @ sigma2 @ root1  # Sigma_1^(1/2) Sigma_2 Sigma_1^(1/2), (D, D)
    tr_cross = torch.linalg.eigvalsh((inner + inner.T) / 2).clamp(min=0).sqrt().sum()
    d2 = (mu1 - mu2).square().sum() + sigma1.trace() + sigma2.trace() - 2 * tr_cross
    return max(float(d2), 0.0)


def frechet_distance(x: Tensor, y: Tensor) -> float:
    """Fréchet distance between the Gaussians fitted to features ``x`` (n, D) and ``y`` (m, D)."""
    a, b = feature_stats(x), feature_stats(y)
    return frechet_distance_from_stats(a.mu, a.sigma, b.mu, b.sigma)
