"""Learning-rate schedules as a pure function of the step (so resuming needs no scheduler state)."""

from __future__ import annotations

import math

from ..config import TrainConfig


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Multiplier of ``cfg.lr`` for optimizer step ``step`` (1-based).

    Linear warmup over ``warmup_steps`` (at most ``steps``: a short run of a preset with a long warmup warms
    up over all of it), then constant or a half-cosine decay to ``min_lr_ratio`` at ``cfg.steps`` (Loshchilov
    & Hutter, 2017, arXiv:1608.03983).
    """
    warmup = min(cfg.warmup_steps, cfg.steps)
    if warmup and step <= warmup:
        return step / warmup
    if cfg.schedule == "constant":
        return 1.0
    span = max(cfg.steps - warmup, 1)
    progress = min(max(step - warmup, 0) / span, 1.0)
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
