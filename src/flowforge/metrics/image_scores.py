"""Score a set of generated images against a reference set in one extractor's features.

One call gives every image-quality number of flowforge, as a plain dict:

- ``fd``: Fréchet distance (:mod:`flowforge.metrics.frechet`) against the statistics of
  the *whole* reference set. It is biased upwards at small ``n_samples``, so compare
  numbers at equal sample counts, and against the floor (real images scored the same way).
- ``kd``, ``kd_stderr``: unbiased polynomial-kernel MMD^2 (KID in Inception features;
  :mod:`flowforge.metrics.kernel_distance`) over ``kd_subsets`` disjoint subsets of
  ``kd_subset_size``, its standard error.
- ``precision``, ``recall``: improved precision and recall with ``pr_k`` neighbours
  (:mod:`flowforge.metrics.precision_recall`), on ``pr_n`` samples and as many
  reference images drawn at random (equal sizes, as the method needs).
- for extractors with a classifier head: ``class_histogram`` (counts of the predicted
  classes of the samples), ``confidence`` (mean top-class probability) and, when the
  samples' ``labels`` are given (class-conditional generation), ``label_accuracy``
  (share classified as their label) and ``label_probability`` (mean probability of it).

Every result names the extractor and its weights, the reference set, ``n_samples``
and ``n_reference``, and the seconds each part took.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor

from flowforge.metrics.extractor import ExtractorError, FeatureExtractor
from flowforge.metrics.frechet import feature_stats, frechet_distance_from_stats
from flowforge.metrics.kernel_distance import kernel_distance
from flowforge.metrics.precision_recall import precision_recall
from flowforge.metrics.reference import ReferenceFeatures


def classifier_scores(logits: Tensor, labels: Tensor | None) -> dict[str, Any]:
    """Class histogram and mean confidence of ``logits`` (n, K); label accuracy and probability given ``labels`` (n,)."""
    probs = logits.double().softmax(1)  # (n, K)
    pred = probs.argmax(1)  # (n,)
    out: dict[str, Any] = {
        "class_histogram": torch.bincount(pred, minlength=probs.shape[1]).tolist(),
        "confidence": float(probs.max(1).values.mean()),
    }
    if labels is not None:
        labels = torch.as_tensor(labels)
        if labels.shape != pred.shape or labels.dtype.is_floating_point:
            raise ExtractorError(f"labels must be integers of shape ({len(pred)},), got {labels.dtype} "
                                 f"{tuple(labels.shape)}")
        if labels.min() < 0 or labels.max() >= probs.shape[1]:
            raise ExtractorError(f"labels must be class indices 0..{probs.shape[1] - 1}, got "
                                 f"{int(labels.min())}..{int(labels.max())}")
        out["label_accuracy"] = float((pred == labels).double().mean())
        out["label_probability"] = float(probs.gather(1, labels[:, None].long()).mean())
    return out


def score_images(
    samples: Tensor,
    reference: ReferenceFeatures,
    *,
    extractor: FeatureExtractor,
    value_range: tuple[float, float],
    labels: Tensor | None = None,
    k: int = 3,
    kd_max_subset_size: int = 1000,
    kd_min_subsets: int = 10,
    seed: int = 0,
    batch_size: int = 100,
    check_range: bool = True,
) -> dict[str, Any]:
    """Score ``samples`` (n, C, H, W), in ``value_range``, against ``reference`` in ``extractor``'s features.

    Arguments:
        samples: generated (or real, for a floor) images, ``n >= 2 * kd_min_subsets``.
        reference: from :func:`~flowforge.metrics.reference.reference_features` with the same extractor.
        extractor: from :func:`~flowforge.metrics.extractors.load_extractor`.
        value_range: ``(lo, hi)`` of the samples, e.g. the data set's ``value_range``.
        labels: ``(n,)`` the labels the samples were generated with, if class-conditional.
        k: neighbours of the precision/recall manifolds.
        kd_max_subset_size, kd_min_subsets: subsets of the kernel distance (see ``kernel_distance``).
        seed: for the kernel-distance subsets and the precision/recall subsample.
        check_range: reject samples that look like they are in another value range (see ``to_unit_pixels``);
            pass False when the range is certain (e.g. a model's own) and poor samples may stray far out of it.

    Returns a dict of floats, ints and lists (module docstring), ready for JSON.
    """
    if reference.extractor != extractor.name or reference.weights_sha256 != extractor.weights_sha256:
        raise ExtractorError(
            f"reference {reference.name} has features of {reference.extractor!r} "
            f"(sha256 {reference.weights_sha256[:12]}...), not of {extractor.name!r} "
            f"(sha256 {extractor.weights_sha256[:12]}...); extract it again with this extractor"
        )
    clock = Clock()
    with clock.part("features"):
        out = extractor(samples, value_range, batch_size=batch_size, check_range=check_range)
    result: dict[str, Any] = {
        "extractor": extractor.name,
        "weights_sha256": extractor.weights_sha256,
        "reference": reference.name,
        **feature_scores(out.features, reference, clock, k=k, kd_max_subset_size=kd_max_subset_size,
                         kd_min_subsets=kd_min_subsets, seed=seed),
    }
    if out.logits is not None:
        with clock.part("classifier"):
            result.update(classifier_scores(out.logits, labels))
    elif labels is not None:
        raise ExtractorError(f"the {extractor.name!r} extractor has no classifier head, so labels cannot be scored; "
                             f"use a data set's own extractor (mnist, fashion-mnist, digits)")
    result["seconds"] = clock.seconds
    return result


class Clock:
    """The seconds each named part of a computation took."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def part(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        yield
        self.seconds[name] = time.perf_counter() - start


def feature_scores(feats: Tensor, reference: ReferenceFeatures, clock: Clock, *, k: int, kd_max_subset_size: int,
                   kd_min_subsets: int, seed: int) -> dict[str, Any]:
    """Fréchet distance, kernel distance and precision/recall of features ``feats`` (n, D) against ``reference``
    (the entries of :func:`score_images`' result that compare distributions), each part timed by ``clock``."""
    n, m = feats.shape[0], len(reference)
    with clock.part("fd"):
        stats = feature_stats(feats)
        fd = frechet_distance_from_stats(stats.mu, stats.sigma, reference.stats.mu, reference.stats.sigma)
    with clock.part("kd"):
        kd = kernel_distance(feats, reference.features, max_subset_size=kd_max_subset_size,
                             min_subsets=kd_min_subsets, seed=seed)
    with clock.part("pr"):
        n_pr = min(n, m)
        gen = torch.Generator().manual_seed(seed + 1)
        real = reference.features[torch.randperm(m, generator=gen)[:n_pr]]  # (n_pr, D)
        fake = feats[torch.randperm(n, generator=gen)[:n_pr]]  # (n_pr, D)
        pr = precision_recall(real, fake, k)
    return {"n_samples": n, "n_reference": m, "fd": fd, "kd": kd.mean, "kd_stderr": kd.stderr,
            "kd_subsets": kd.n_subsets, "kd_subset_size": kd.subset_size, "precision": pr.precision,
            "recall": pr.recall, "pr_k": k, "pr_n": n_pr}
