import pytest
import torch

from flowforge.metrics import energy_distance, matched_gaussian, sliced_wasserstein2, wasserstein2


def test_energy_distance_matches_closed_form_in_1d():
    # For point masses at a and b: 2|a-b| - 0 - 0.
    x, y = torch.zeros(10, 1), torch.full((7, 1), 3.0)
    assert energy_distance(x, y) == pytest.approx(6.0)
    assert energy_distance(x, x) == pytest.approx(0.0)


def test_w2_of_a_shift_is_the_shift():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 3, generator=g, dtype=torch.float64)
    shift = torch.tensor([0.3, -0.4, 0.0], dtype=torch.float64)
    assert wasserstein2(x, x + shift) == pytest.approx(0.5, rel=1e-6)
    # sliced W2 of a shift: sqrt(E_theta <theta, shift>^2) = |shift| / sqrt(d)
    assert sliced_wasserstein2(x, x + shift, n_projections=20000) == pytest.approx(0.5 / 3**0.5, rel=0.02)


def test_distances_separate_distributions_beyond_noise_floor():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(2000, 2, generator=g), torch.randn(2000, 2, generator=g)
    c = torch.randn(2000, 2, generator=g) * 1.3 + 0.2
    for fn in (energy_distance, sliced_wasserstein2, wasserstein2):
        assert fn(a, c) > 3 * fn(a, b)


def test_matched_gaussian_has_data_moments():
    g = torch.Generator().manual_seed(2)
    data = torch.randn(4000, 2, generator=g) @ torch.tensor([[2.0, 0.0], [1.0, 0.5]]) + torch.tensor([1.0, -1.0])
    fake = matched_gaussian(data, 20000, seed=3)
    assert torch.allclose(fake.mean(0), data.mean(0), atol=0.05)
    assert torch.allclose(torch.cov(fake.T), torch.cov(data.T), atol=0.1)


def test_bad_samples_are_rejected():
    with pytest.raises(ValueError, match="NaN or inf"):
        energy_distance(torch.tensor([[0.0], [float("nan")]]), torch.zeros(3, 1))
    with pytest.raises(ValueError, match="at least 2 points"):
        energy_distance(torch.zeros(1, 2), torch.zeros(3, 2))
