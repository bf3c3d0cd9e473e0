"""Paths' own edges: the arguments they refuse, and the ends of their time range (mutants that survived
``make mutate`` on paths/, see docs/contributing.md)."""

import pytest

from flowforge.paths import EDMPath, LinearPath


@pytest.mark.parametrize("sigma_min", [-0.01, 1.0, 1.5])
def test_linear_path_refuses_a_sigma_min_outside_zero_one(sigma_min):
    with pytest.raises(ValueError, match=r"sigma_min must be in \[0, 1\)"):
        LinearPath(sigma_min)


def test_linear_path_takes_its_whole_sigma_min_range():
    assert LinearPath(0.0).sigma_min == 0.0 and LinearPath(0.999).sigma_min == 0.999


def test_edm_path_defaults_are_the_papers_and_it_refuses_a_non_positive_sigma_max():
    """Karras et al. (2022), Table 1 / Sec. 5: sigma in [0.002, 80]."""
    path = EDMPath()
    assert path.sigma_max == path.t_max == 80.0 and path.train_t_min == 0.002
    assert EDMPath(0.5).t_max == 0.5
    for bad in (0.0, -1.0):
        with pytest.raises(ValueError, match="sigma_max must be positive"):
            EDMPath(bad)
