"""Turn a toy distribution into a :class:`Dataset` with seeded train, test and fresh draws."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from flowforge.config import DataConfig
from flowforge.data.base import Dataset
from flowforge.data.errors import DataError
from flowforge.data.toy import TOY_SETS, ToySet

# Independent random streams per seed, so that fresh(n, s) never repeats the
# training or test points whatever seeds a run and its evaluation pick.
TRAIN_STREAM, TEST_STREAM, FRESH_STREAM = 0, 1, 2


@dataclass(frozen=True)
class ToyDraw:
    """``draw(n, seed)``: ``(n, 2)`` float32 points of one toy set at a fixed noise level."""

    toy: ToySet
    noise: float
    stream: int = FRESH_STREAM

    def __call__(self, n: int, seed: int) -> torch.Tensor:
        rng = np.random.default_rng([seed, self.stream])
        points = self.toy.sample(n, rng, self.noise)  # (n, 2)
        return torch.from_numpy(np.ascontiguousarray(points, dtype=np.float32))


def toy_noise(name: str, toy: ToySet, noise: float | None) -> float:
    """The noise level to use: the config's override, else the set's customary value."""
    if noise is None:
        return toy.noise if toy.noise is not None else 0.0
    if toy.noise is None:
        raise DataError(f"data.noise: the {name!r} set has no noise parameter; remove data.noise (got {noise})")
    return noise


def load_toy(cfg: DataConfig) -> Dataset:
    """``cfg.n_train`` and ``cfg.n_test`` points of the toy set ``cfg.name``, drawn with ``cfg.seed``."""
    if cfg.name not in TOY_SETS:
        raise DataError(f"data.name: {cfg.name!r} is not a toy set; choose one of {', '.join(TOY_SETS)}")
    toy = TOY_SETS[cfg.name]
    noise = toy_noise(cfg.name, toy, cfg.noise)
    return Dataset(
        name=cfg.name,
        kind="points",
        train=ToyDraw(toy, noise, TRAIN_STREAM)(cfg.n_train, cfg.seed),
        test=ToyDraw(toy, noise, TEST_STREAM)(cfg.n_test, cfg.seed),
        fresh=ToyDraw(toy, noise, FRESH_STREAM),
    )
