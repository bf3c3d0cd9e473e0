"""Seeded train/test holdout for data that ships without a test split (arrays, image folders)."""

from __future__ import annotations

import numpy as np

from flowforge.data.errors import DataError

TEST_FRACTION = 0.1


def holdout(n: int, seed: int, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Split ``range(n)`` into ``(train_idx, test_idx)``: a random 10% (at least one) held out.

    Both index arrays are sorted, so the training data keeps the file's order.
    """
    if n < 2:
        raise DataError(f"{source}: {n} example(s) cannot be split into train and test; provide at least 2")
    n_test = max(1, round(TEST_FRACTION * n))
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[n_test:]), np.sort(order[:n_test])
