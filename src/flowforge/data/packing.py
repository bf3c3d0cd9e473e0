"""Training on several resolutions at once: images resized to each size, and packs of them up to a token budget.

``data.resolutions: [14, 21, 28]`` trains a transformer on each image at a resolution drawn from the list;
:class:`PackSampler` groups the images of each step into one *pack* whose token count stays within
``train.pack_tokens``, which :meth:`flowforge.nets.DiT.forward_packed` runs as one sequence without padding
(NaViT, Dehghani et al. 2023, arXiv:2307.06304, Sec. 2.2: greedy packing of examples in their order).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import reduce

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from flowforge.data.errors import DataError


def resize_images(x: Tensor, size: int) -> Tensor:
    """Images resized to ``size x size`` by bilinear interpolation, antialiased when shrinking.

    Antialiasing low-pass filters before subsampling, so a downsized digit keeps no aliasing of strokes thinner
    than the new pixels. Values stay in the data's range (interpolation is convex); discrete data lands between
    its levels, which the model's dequantization rounds to the nearest level.

    Shapes: (B, C, H, W) -> (B, C, size, size).

    Example:
        >>> resize_images(torch.ones(2, 1, 28, 28), 14).shape
        torch.Size([2, 1, 14, 14])
    """
    if x.ndim != 4:
        raise DataError(f"resizing needs images (B, C, H, W), got shape {tuple(x.shape)}")
    if x.shape[-2:] == (size, size):
        return x
    shrink = size < min(x.shape[-2:])
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=shrink)


def patch_sizes(resolutions: list[int] | tuple[int, ...]) -> list[int]:
    """The patch sizes that divide every resolution: the divisors of their greatest common divisor.

    Example:
        >>> patch_sizes([14, 21, 28])
        [1, 7]
    """
    g = reduce(math.gcd, resolutions)
    return [p for p in range(1, g + 1) if g % p == 0]


def check_resolutions(resolutions: list[int] | tuple[int, ...], shape: tuple[int, ...], patch: int,
                      pack_tokens: int) -> list[int]:
    """``resolutions`` sorted, after checking that they fit images of ``shape``, the patch and the token budget.

    Raises:
        DataError: not image data, a resolution not divisible by the patch size (naming the patch sizes that
            divide them all), or an image larger than the token budget.
    """
    if len(shape) != 3:
        raise DataError(f"data.resolutions resizes images; this data set holds points of shape {tuple(shape)}")
    if not resolutions or min(resolutions) < 1:
        raise DataError(f"data.resolutions: got {list(resolutions)}, expected one or more positive sizes in pixels")
    bad = [r for r in resolutions if r % patch]
    if bad:
        raise DataError(f"data.resolutions {list(resolutions)}: {', '.join(map(str, bad))} px is not divisible by "
                        f"model.net.patch={patch}; patch sizes that divide every resolution: "
                        f"{', '.join(map(str, patch_sizes(resolutions)))} (or choose other resolutions)")
    largest = max(resolutions)
    tokens = (largest // patch) ** 2
    if tokens > pack_tokens:
        raise DataError(f"train.pack_tokens={pack_tokens} is smaller than one {largest}x{largest} image at patch "
                        f"{patch} ({tokens} tokens); raise train.pack_tokens to at least {tokens}")
    return sorted(set(resolutions))


@dataclass(frozen=True)
class PackGroup:
    """The images of one resolution in a pack: their indices in the training set."""

    resolution: int
    indices: Tensor  # (B_g,) int64


class PackSampler:
    """Which images, at which resolutions, form the pack of step ``step``: shuffled epochs without replacement.

    In epoch ``e`` the training set is visited in the permutation seeded by ``(seed, e)`` and every image gets a
    resolution drawn uniformly from ``resolutions`` (same seed); images are taken in that order into a pack
    until the next one would push it past ``budget`` tokens, which starts the next pack (greedy packing as in
    NaViT). The epoch's last, part-filled pack is dropped, as :class:`flowforge.train.batches.BatchOrder` drops
    its last incomplete batch. Everything follows from ``(seed, step)``, so a resumed run sees the same packs.

    A pack is returned grouped by resolution, smallest first, so that the images of one resolution are
    contiguous in the packed sequence (one run of the ``segments`` attention kernel each).

    Example:
        >>> sampler = PackSampler(100, [14, 28], patch=7, budget=64, seed=0)
        >>> pack = sampler.pack(1)
        >>> sum(len(g.indices) * (g.resolution // 7) ** 2 for g in pack) <= 64
        True
    """

    def __init__(self, n: int, resolutions: list[int] | tuple[int, ...], patch: int, budget: int, seed: int):
        self.n, self.resolutions, self.patch, self.budget, self.seed = n, sorted(resolutions), patch, budget, seed
        self.tokens = np.array([(r // patch) ** 2 for r in self.resolutions])  # per resolution
        if self.tokens.max() > budget:
            raise DataError(f"a {max(resolutions)} px image has {int(self.tokens.max())} tokens at patch {patch}, "
                            f"more than the pack budget of {budget}")
        self._epochs: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # per epoch: order, resolution, starts
        self._first_step = [1]  # global step of each epoch's first pack

    def _epoch(self, epoch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        while len(self._epochs) <= epoch:
            e = len(self._epochs)
            gen = torch.Generator().manual_seed(_seed(self.seed, e))
            order = torch.randperm(self.n, generator=gen).numpy()
            which = torch.randint(len(self.resolutions), (self.n,), generator=gen).numpy()
            starts = _greedy_starts(self.tokens[which], self.budget)  # pack k is [starts[k], starts[k + 1])
            if len(starts) < 2:
                raise DataError(f"the training set ({self.n} images) does not fill one pack of {self.budget} "
                                f"tokens; lower train.pack_tokens")
            self._epochs.append((order, which, starts))
            self._first_step.append(self._first_step[-1] + len(starts) - 1)
        return self._epochs[epoch]

    def pack(self, step: int) -> list[PackGroup]:
        """The pack of 1-based optimizer step ``step``, grouped by resolution (smallest first)."""
        if step < 1:
            raise ValueError(f"steps count from 1, got {step}")
        epoch = 0
        while True:
            order, which, starts = self._epoch(epoch)
            if step < self._first_step[epoch + 1]:
                break
            epoch += 1
        k = step - self._first_step[epoch]
        rows = slice(int(starts[k]), int(starts[k + 1]))
        groups = []
        for i, r in enumerate(self.resolutions):
            idx = order[rows][which[rows] == i]
            if len(idx):
                groups.append(PackGroup(r, torch.from_numpy(idx.astype(np.int64))))
        return groups

    def packs_in_epoch(self, epoch: int) -> int:
        """How many packs (steps) epoch ``epoch`` (from 0) has."""
        return len(self._epoch(epoch)[2]) - 1

    def images_per_pack(self) -> float:
        """The mean number of images per pack in the first epoch."""
        _, _, starts = self._epoch(0)
        return float(np.diff(starts).mean())


def pack_batch(groups: list[PackGroup], data: Tensor, labels: Tensor | None) -> tuple[list[Tensor], list[Tensor] | None]:
    """The images of a pack, each group resized to its resolution, and their labels.

    Shapes: ``data`` (N, C, H, W), ``labels`` (N,) or None -> [(B_g, C, r_g, r_g)], [(B_g,)] or None.
    """
    xs, ys = [], []
    for g in groups:
        idx = g.indices.to(data.device)
        xs.append(resize_images(data[idx], g.resolution))  # (B_g, C, r_g, r_g)
        if labels is not None:
            ys.append(labels[idx])  # (B_g,)
    return xs, (ys if labels is not None else None)


def _seed(seed: int, epoch: int) -> int:
    return int(np.random.SeedSequence([seed, 0x9AC4, epoch]).generate_state(2, np.uint64)[0] >> np.uint64(1))


def _greedy_starts(tokens: np.ndarray, budget: int) -> np.ndarray:
    """Where each full pack starts when ``tokens`` are taken in order into packs of at most ``budget``, and where
    the last full pack ends (the remainder, which does not fill a pack, is left out)."""
    starts, used = [0], 0
    for i, n in enumerate(tokens.tolist()):
        if used + n > budget:
            starts.append(i)
            used = 0
        used += n
    return np.asarray(starts)


__all__ = ["PackGroup", "PackSampler", "check_resolutions", "pack_batch", "patch_sizes", "resize_images"]
