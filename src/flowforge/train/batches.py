"""Deterministic, resumable batch order shared by all processes."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..errors import UserError


def step_seed(seed: int, *keys: int) -> int:
    """A 63-bit seed derived from ``seed`` and ``keys`` (NumPy's SeedSequence hashing)."""
    return int(np.random.SeedSequence([seed, *keys]).generate_state(2, np.uint64)[0] >> np.uint64(1))


class BatchOrder:
    """Which examples form global batch ``step``: shuffled epochs without replacement.

    Epoch ``e`` is the permutation seeded by ``(seed, e)``; its last incomplete
    batch is dropped. Everything follows from ``step``, so a resumed run sees the
    same batches as an uninterrupted one, and every process computes the same
    global batch and keeps its own contiguous slice of it.
    """

    def __init__(self, n: int, batch_size: int, seed: int):
        if batch_size > n:
            raise UserError(f"train.batch_size ({batch_size}) is larger than the training set ({n} examples); "
                            f"lower train.batch_size or use more data")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.per_epoch = n // batch_size
        self._epoch, self._perm = -1, None

    def indices(self, step: int) -> Tensor:
        """Global indices (batch_size,) of 1-based optimizer step ``step``."""
        epoch, pos = divmod(step - 1, self.per_epoch)
        if epoch != self._epoch:
            gen = torch.Generator().manual_seed(step_seed(self.seed, 0xDA7A, epoch))
            self._epoch, self._perm = epoch, torch.randperm(self.n, generator=gen)
        return self._perm[pos * self.batch_size:(pos + 1) * self.batch_size]
