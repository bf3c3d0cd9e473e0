"""Sample-quality and likelihood metrics."""

from .distances import energy_distance, matched_gaussian, sliced_wasserstein2, wasserstein2
from .extractor import ExtractorError, FeatureExtractor, Features, to_unit_pixels
from .extractors import EXTRACTORS, ExtractorSpec, WeightsFile, default_extractor, load_extractor
from .frechet import FeatureStats, feature_stats, frechet_distance, frechet_distance_from_stats
from .image_scores import score_images
from .kernel_distance import KernelDistance, kernel_distance
from .likelihood import heldout_likelihood
from .precision_recall import PrecisionRecall, precision_recall
from .reference import ReferenceFeatures, reference_features

__all__ = ["energy_distance", "heldout_likelihood", "matched_gaussian", "sample_distances", "sliced_wasserstein2", "wasserstein2"]
__all__ += [
    "EXTRACTORS", "ExtractorError", "ExtractorSpec", "FeatureExtractor", "FeatureStats", "Features", "KernelDistance",
    "PrecisionRecall", "ReferenceFeatures", "WeightsFile", "default_extractor", "feature_stats", "frechet_distance",
    "frechet_distance_from_stats", "kernel_distance", "load_extractor", "precision_recall", "reference_features",
    "score_images", "to_unit_pixels",
]


def sample_distances(x, y, *, n_exact: int = 2000, n_projections: int = 1000, seed: int = 0) -> dict[str, float]:
    """Energy distance, sliced W2 and exact W2 (on the first ``n_exact`` points of each) between two samples."""
    return {
        "energy_distance": energy_distance(x, y),
        "sliced_w2": sliced_wasserstein2(x, y, n_projections=n_projections, seed=seed),
        "w2": wasserstein2(x[:n_exact], y[:n_exact]),
    }
