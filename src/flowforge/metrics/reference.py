"""Features of a reference image set (e.g. a data set's test split), cached on disk.

A reference set is extracted once per (data set, split, extractor) and kept as a
safetensors file in ``<cache>/reference-features/`` (``<cache>`` as for data:
``cache_dir``, else ``$FLOWFORGE_CACHE``, else ``~/.cache/flowforge``). The file name
carries the first 16 hex digits of the extractor's weights SHA-256 and of the images'
own SHA-256, so a changed network or changed images (another split seed, another
value range) never reuse stale features. The file holds the features, the logits if
any, and their mean and covariance (float64).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor

from flowforge.data.downloads import cache_root
from flowforge.metrics.extractor import ExtractorError, FeatureExtractor
from flowforge.metrics.frechet import FeatureStats, feature_stats

CACHE_FOLDER = "reference-features"


@dataclass(frozen=True)
class ReferenceFeatures:
    """Features ``(M, D)`` (and logits ``(M, K)``) of a named reference set, with their statistics."""

    name: str  # e.g. "mnist:test"
    extractor: str
    weights_sha256: str
    features: Tensor
    logits: Tensor | None
    stats: FeatureStats

    def __len__(self) -> int:
        return self.features.shape[0]


def images_sha256(images: Tensor, value_range: tuple[float, float]) -> str:
    """SHA-256 of the images' float32 bytes, shape and value range: the cache key of their content."""
    digest = hashlib.sha256(repr((tuple(images.shape), tuple(float(v) for v in value_range))).encode())
    digest.update(images.detach().float().contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()


def cache_path(dataset: str, split: str, extractor: FeatureExtractor, content_sha256: str, cache_dir: str | None) -> Path:
    stem = f"{dataset}-{split}-{extractor.name}-{extractor.weights_sha256[:16]}-{content_sha256[:16]}"
    return cache_root(cache_dir) / CACHE_FOLDER / f"{stem}.safetensors"


def _read(path: Path, name: str, extractor: FeatureExtractor) -> ReferenceFeatures:
    with safe_open(str(path), framework="pt") as f:
        tensors = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118 (safe_open has no iteration)
    stats = FeatureStats(mu=tensors["mu"], sigma=tensors["sigma"], n=tensors["features"].shape[0])
    return ReferenceFeatures(name, extractor.name, extractor.weights_sha256, tensors["features"],
                             tensors.get("logits"), stats)


def _write(path: Path, ref: ReferenceFeatures) -> None:
    """Atomically: a temporary file beside ``path``, renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {"features": ref.features.contiguous(), "mu": ref.stats.mu, "sigma": ref.stats.sigma}
    if ref.logits is not None:
        tensors["logits"] = ref.logits.contiguous()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={"name": ref.name, "extractor": ref.extractor,
                                          "weights_sha256": ref.weights_sha256})
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def reference_features(
    images: Tensor,
    *,
    dataset: str,
    split: str,
    extractor: FeatureExtractor,
    value_range: tuple[float, float],
    cache: bool = True,
    cache_dir: str | None = None,
    batch_size: int = 100,
) -> ReferenceFeatures:
    """Features of reference ``images`` (M, C, H, W) in ``value_range``, named ``"{dataset}:{split}"``.

    With ``cache`` (default), read them from the cache file if it exists, else extract and write it.
    """
    name = f"{dataset}:{split}"
    if not isinstance(images, Tensor) or images.ndim != 4 or images.shape[0] < 2:
        raise ExtractorError(f"reference {name}: expected at least 2 images (M, C, H, W), got "
                             f"{tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__}")
    path = None
    if cache:
        path = cache_path(dataset, split, extractor, images_sha256(images, value_range), cache_dir)
        if path.is_file():
            try:
                return _read(path, name, extractor)
            except Exception as err:  # noqa: BLE001 (an unreadable cache file is rebuilt, whatever broke it)
                warnings.warn(f"{path}: unreadable cached features ({err}); extracting them again", stacklevel=2)
    out = extractor(images, value_range, batch_size=batch_size)
    ref = ReferenceFeatures(name, extractor.name, extractor.weights_sha256, out.features, out.logits,
                            feature_stats(out.features))
    if path is not None:
        _write(path, ref)
    return ref
