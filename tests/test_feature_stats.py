"""The image feature statistics and the Fréchet distance against numpy and scipy, computed independently."""

import dataclasses

import numpy as np
import pytest
import scipy.linalg
import torch

from flowforge.metrics import feature_stats, frechet_distance, frechet_distance_from_stats


def features(n, d, seed):
    """Correlated, non-centred features (n, D), as a feature network's would be."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)) @ rng.standard_normal((d, d)) + rng.standard_normal(d)


@pytest.mark.parametrize("n,d", [(2, 3), (5, 8), (40, 6), (500, 16)])
def test_feature_stats_are_numpys_mean_and_unbiased_covariance(n, d):
    x = features(n, d, seed=n)
    stats = feature_stats(torch.tensor(x, dtype=torch.float32))
    x32 = x.astype(np.float32).astype(np.float64)  # the float32 values the function was handed
    assert stats.n == n and stats.mu.dtype == stats.sigma.dtype == torch.float64
    np.testing.assert_allclose(stats.mu.numpy(), x32.mean(0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(stats.sigma.numpy(), np.cov(x32, rowvar=False), rtol=1e-10, atol=1e-12)


def test_one_feature_keeps_its_matrix_shape():
    x = features(10, 1, seed=0)
    stats = feature_stats(torch.tensor(x))
    assert stats.sigma.shape == (1, 1)
    assert stats.sigma.item() == pytest.approx(np.var(x, ddof=1), rel=1e-12)


def scipy_frechet(mu1, s1, mu2, s2):
    """pytorch-fid's recipe: ``|mu1 - mu2|^2 + tr(S1 + S2 - 2 sqrtm(S1 S2))``, well-conditioned inputs only."""
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def test_frechet_distance_is_scipys_on_well_conditioned_features():
    x, y = features(400, 6, seed=1), 0.7 * features(300, 6, seed=2) + 0.5
    want = scipy_frechet(x.mean(0), np.cov(x, rowvar=False), y.mean(0), np.cov(y, rowvar=False))
    assert frechet_distance(torch.tensor(x), torch.tensor(y)) == pytest.approx(want, rel=1e-8)
    a = feature_stats(torch.tensor(x))
    assert frechet_distance_from_stats(a.mu, a.sigma, a.mu, a.sigma) == pytest.approx(0.0, abs=1e-9)


def test_frechet_distance_of_two_small_sets_feels_the_unbiased_divisor():
    """With few samples ``n / (n - 1)`` is far from 1: the distance of a set to its own scaled copy is exact."""
    x = features(4, 3, seed=3)
    s = np.cov(x, rowvar=False)
    # N(mu, S) vs N(mu, 4 S): tr(S + 4 S - 2 * 2 S) = tr(S)
    assert frechet_distance(torch.tensor(x), torch.tensor(2 * x)) == pytest.approx(
        float(np.trace(s) + ((x.mean(0)) ** 2).sum()), rel=1e-9)


@pytest.mark.parametrize("which", range(4))
@pytest.mark.parametrize("size", [2, 4])
def test_frechet_distance_refuses_statistics_of_other_shapes(which, size):
    args = [torch.zeros(3), torch.eye(3), torch.zeros(3), torch.eye(3)]
    args[which] = torch.zeros(size) if which % 2 == 0 else torch.eye(size)  # one D too few or too many
    with pytest.raises(ValueError, match=r"expected means \(D,\) and covariances \(D, D\) of one D"):
        frechet_distance_from_stats(*args)
    with pytest.raises(ValueError, match="expected means"):  # a mean that is not a vector
        frechet_distance_from_stats(torch.zeros(3, 1), torch.eye(3), torch.zeros(3), torch.eye(3))


def test_feature_stats_refuse_too_few_or_non_finite_features():
    for bad in (torch.zeros(1, 3), torch.zeros(5), torch.zeros(4, 3, 2)):
        with pytest.raises(ValueError, match=r"expected features \(n, D\) with n >= 2"):
            feature_stats(bad)
    with pytest.raises(dataclasses.FrozenInstanceError):  # statistics are values: never changed after the fact
        feature_stats(torch.zeros(2, 3)).n = 3
    with pytest.raises(ValueError, match="NaN or inf"):
        feature_stats(torch.tensor([[0.0, 1.0], [float("nan"), 2.0]]))


def test_frechet_distance_of_identical_statistics_is_never_negative():
    """Rounding leaves ``d^2`` of identical statistics a hair below 0 about one time in three; it is clipped at 0."""
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        x = torch.randn(50, 8, generator=gen, dtype=torch.float64) @ torch.randn(8, 8, generator=gen, dtype=torch.float64)
        s = feature_stats(x)
        assert frechet_distance_from_stats(s.mu, s.sigma, s.mu, s.sigma) == pytest.approx(0.0, abs=1e-9)
        assert frechet_distance_from_stats(s.mu, s.sigma, s.mu, s.sigma) >= 0.0
