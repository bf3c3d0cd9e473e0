"""scikit-learn's 8x8 handwritten digits (1,797 images, 17 intensity levels 0..16), bundled with sklearn."""

from __future__ import annotations

import numpy as np
import sklearn.datasets
import torch

from flowforge.config import DataConfig
from flowforge.data.base import Dataset
from flowforge.data.intensity import model_range, scale_levels

DIGITS_LEVELS = 17
DIGITS_TEST = 297  # 1,797 = 1,500 train + 297 test


def digits_split(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(train_idx, test_idx)``: a ``default_rng(seed)`` permutation, first 1,500 train, last 297 test.

    The split depends on ``data.seed`` only (default 0), never on the run's seed,
    so every run with the same data config is scored on the same test images.
    """
    order = np.random.default_rng(seed).permutation(1797)
    return order[:-DIGITS_TEST], order[-DIGITS_TEST:]


def load_digits(cfg: DataConfig) -> Dataset:
    """Digits as ``(N, 1, 8, 8)`` images in ``cfg.image_range``, with labels 0..9."""
    bunch = sklearn.datasets.load_digits()
    levels = bunch.images.astype(np.int64)[:, None]  # (1797, 1, 8, 8), values 0..16
    labels = bunch.target.astype(np.int64)  # (1797,)
    images = scale_levels(levels, DIGITS_LEVELS, cfg.image_range)
    train, test = digits_split(cfg.seed)
    return Dataset(
        name="digits",
        kind="image",
        train=torch.from_numpy(images[train]),
        test=torch.from_numpy(images[test]),
        levels=DIGITS_LEVELS,
        value_range=model_range(cfg.image_range),
        train_labels=torch.from_numpy(labels[train]),
        test_labels=torch.from_numpy(labels[test]),
    )
