"""Image-quality scores of a run's samples in a fixed feature extractor, beside the noise floor and a baseline.

Three rows, each scored against the same reference (the data set's test split, its
features cached per extractor and weights hash):

- ``model``: the samples ``flowforge eval`` drew;
- ``noise_floor``: as many training images: the best score finite samples allow;
- ``matched_gaussian``: a Gaussian with the training images' mean and covariance, clipped to the value range.

Which extractor scores a data set is :func:`flowforge.metrics.default_extractor`'s choice:
a classifier of its own for MNIST, Fashion-MNIST and digits (so the Fréchet distance is "FD
in that classifier's features", never FID), Inception-v3 for other RGB images (the optional
``fid`` extra), none for other grey images.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import Tensor

from ..data import Dataset
from ..metrics import ExtractorError, default_extractor, load_extractor, reference_features, score_images

ROWS = ("model", "noise_floor", "matched_gaussian")


def image_extractor(dataset: Dataset) -> str | None:
    """The pinned extractor that scores ``dataset``'s images, or None (vectors, or images none serves)."""
    return default_extractor(dataset.name, dataset.shape) if dataset.kind == "image" else None


def image_scores(dataset: Dataset, samples: Tensor, gaussian: Tensor, *, labels: Tensor | None, seed: int,
                 cache_dir: str | None = None, device: torch.device | str = "cpu") -> dict[str, Any] | None:
    """Scores of ``samples`` (n, C, H, W) and of the two yardsticks, or None for data no extractor serves.

    ``gaussian`` holds at least as many draws of the matched Gaussian as there are samples (the ones
    ``flowforge eval`` scored in pixel space); they are clipped to the value range here.

    ``labels`` (n,) are the classes the samples were drawn with (class-conditional models), scored when the
    extractor has a classifier head; the floor is then scored with the training images' own labels (images the
    classifier was trained on: its accuracy there is a training accuracy), and the record keeps the classifier's
    accuracy on the test split (``classifier_test_accuracy``), the fair yardstick of a model's label accuracy.
    When the extractor needs an optional package that is missing, the record says so instead of failing.
    ``device``: where the extractor's network runs (the scores themselves are taken on the CPU).
    """
    name = image_extractor(dataset)
    if name is None:
        return None
    t0 = time.perf_counter()
    try:
        extractor = load_extractor(name).to(device)
    except ExtractorError as err:
        return {"extractor": name, "skipped": str(err)}
    value_range = tuple(dataset.value_range)
    reference = reference_features(dataset.test, dataset=dataset.name, split="test", extractor=extractor,
                                   value_range=value_range, cache_dir=cache_dir)
    n = min(len(samples), len(dataset.train))  # every row the same size: FD's bias depends on it
    samples = samples[:n]
    labels = labels[:n] if labels is not None and extractor.num_classes is not None else None
    pick = torch.randperm(len(dataset.train), generator=torch.Generator().manual_seed(seed + 2))[:n]
    floor = dataset.train[pick]
    floor_labels = dataset.train_labels[pick] if labels is not None and dataset.train_labels is not None else None
    lo, hi = value_range
    gaussian = gaussian[:n].clamp(lo, hi)
    # kernel distance over 10 disjoint subsets where n allows, fewer (of at least 2 points) for tiny evals
    options = dict(extractor=extractor, value_range=value_range, seed=seed, kd_min_subsets=max(1, min(10, n // 2)),
                   k=min(3, n - 1))
    rows = {
        "model": score_images(samples, reference, labels=labels, check_range=False, **options),
        "noise_floor": score_images(floor, reference, labels=floor_labels, **options),
        "matched_gaussian": score_images(gaussian, reference, **options),
    }
    out = {"extractor": name, "weights_sha256": extractor.weights_sha256, "reference": reference.name,
           "n_samples": n, "n_reference": len(reference), "seconds": time.perf_counter() - t0, **rows}
    if reference.logits is not None and dataset.test_labels is not None:
        out["classifier_test_accuracy"] = float((reference.logits.argmax(1) == dataset.test_labels).double().mean())
    return out
