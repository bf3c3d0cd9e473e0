"""Sample-quality and likelihood metrics."""

from .distances import energy_distance, matched_gaussian, sliced_wasserstein2, wasserstein2
from .likelihood import heldout_likelihood

__all__ = ["energy_distance", "heldout_likelihood", "matched_gaussian", "sample_distances", "sliced_wasserstein2", "wasserstein2"]


def sample_distances(x, y, *, n_exact: int = 2000, n_projections: int = 1000, seed: int = 0) -> dict[str, float]:
    """Energy distance, sliced W2 and exact W2 (on the first ``n_exact`` points of each) between two samples."""
    return {
        "energy_distance": energy_distance(x, y),
        "sliced_w2": sliced_wasserstein2(x, y, n_projections=n_projections, seed=seed),
        "w2": wasserstein2(x[:n_exact], y[:n_exact]),
    }
