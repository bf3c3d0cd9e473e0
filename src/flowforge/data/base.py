"""The :class:`Dataset` every loader returns: tensors in model space plus what evaluation needs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from flowforge.data.errors import DataError


@dataclass
class Dataset:
    """A loaded data set, already split and scaled to model space.

    Arguments:
        name: the data set's name (``cfg.name``, or the file's name for file data).
        kind: ``"points"`` for vectors ``(N, D)``, ``"image"`` for ``(N, C, H, W)``.
        train: ``(N, *shape)`` float32 training examples in model space.
        test: ``(M, *shape)`` float32 held-out examples in the same space.
        levels: number of discrete intensity levels of the raw images (digits 17,
            8-bit images 256), for dequantization; ``None`` for continuous data.
        value_range: ``(lo, hi)`` of model space for images, e.g. ``(-1.0, 1.0)``.
        train_labels: ``(N,)`` int64 class labels, where the data has classes.
        test_labels: ``(M,)`` int64 class labels.
        fresh: toy sets only: ``fresh(n, seed)`` returns ``(n, *shape)`` new draws of
            the true distribution, the same for the same seed.
        train_context: ``(N, C)`` float32 context vectors ``c`` of a conditional density
            ``p(x | c)`` (e.g. ``data.context_columns`` of a CSV file), one per example.
        test_context: ``(M, C)`` float32 context vectors of the test split.
    """

    name: str
    kind: Literal["points", "image"]
    train: torch.Tensor
    test: torch.Tensor
    levels: int | None = None
    value_range: tuple[float, float] | None = None
    train_labels: torch.Tensor | None = None
    test_labels: torch.Tensor | None = None
    fresh: Callable[[int, int], torch.Tensor] | None = None
    train_context: torch.Tensor | None = None
    test_context: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("points", "image"):
            raise DataError(f"{self.name}: kind must be 'points' or 'image', got {self.kind!r}")
        for split, x in (("train", self.train), ("test", self.test)):
            if not isinstance(x, torch.Tensor) or x.dtype != torch.float32 or x.ndim < 2:
                raise DataError(f"{self.name}: {split} must be a float32 tensor (N, *shape), got {_describe(x)}")
            if len(x) == 0:
                raise DataError(f"{self.name}: the {split} split is empty; provide at least one example")
        if self.train.shape[1:] != self.test.shape[1:]:
            raise DataError(
                f"{self.name}: train examples have shape {tuple(self.train.shape[1:])} "
                f"but test examples {tuple(self.test.shape[1:])}; both splits need one shape"
            )
        for split, x, y in (("train", self.train, self.train_labels), ("test", self.test, self.test_labels)):
            if y is not None and (y.dtype != torch.int64 or y.shape != (len(x),)):
                raise DataError(f"{self.name}: {split}_labels must be int64 of shape ({len(x)},), got {_describe(y)}")
        self._check_context()

    def _check_context(self) -> None:
        if (self.train_context is None) != (self.test_context is None):
            raise DataError(f"{self.name}: give a context for both splits or for neither")
        for split, x, c in (("train", self.train, self.train_context), ("test", self.test, self.test_context)):
            if c is not None and (c.dtype != torch.float32 or c.ndim != 2 or len(c) != len(x)
                                  or c.shape[1] != self.train_context.shape[1]):
                raise DataError(f"{self.name}: {split}_context must be float32 of shape ({len(x)}, C), got "
                                f"{_describe(c)}")

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of one example: ``(D,)`` for points, ``(C, H, W)`` for images."""
        return tuple(self.train.shape[1:])

    def spec(self) -> dict[str, Any]:
        """What building and loading a model of this data needs to know, without the data itself
        (a run's ``data.json``): name, kind, per-example shape, value range and intensity levels."""
        spec = {"name": self.name, "kind": self.kind, "shape": list(self.shape),
                "value_range": list(self.value_range) if self.value_range else None, "levels": self.levels}
        if self.train_context is not None:  # a conditional data set: the size of c, for the model's conditioners
            spec["context_dim"] = int(self.train_context.shape[1])
        return spec

    def reference(self, n: int, seed: int) -> torch.Tensor:
        """Examples of the true distribution, for evaluation.

        ``(n, *shape)`` fresh draws where the distribution is known (toy sets);
        otherwise ``(min(n, M), *shape)``: a random subset of the test split,
        without replacement, chosen by ``seed``.
        """
        if n < 1:
            raise DataError(f"{self.name}: reference needs n >= 1, got {n}")
        if self.fresh is not None:
            return self.fresh(n, seed)
        order = np.random.default_rng(seed).permutation(len(self.test))[: min(n, len(self.test))]
        return self.test[torch.from_numpy(order)]

    def to_pixels(self, x: torch.Tensor) -> torch.Tensor:
        """Map model-space images ``(..., C, H, W)`` to ``[0, 1]`` floats, clamped, for pictures."""
        if self.kind != "image" or self.value_range is None:
            raise DataError(f"{self.name}: to_pixels is for image data; this data set holds {self.kind}")
        lo, hi = self.value_range
        return ((x.float() - lo) / (hi - lo)).clamp(0.0, 1.0)


def _describe(x: object) -> str:
    if isinstance(x, torch.Tensor):
        return f"{x.dtype} tensor of shape {tuple(x.shape)}"
    return type(x).__name__
