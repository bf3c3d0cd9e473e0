"""Learning-rate schedules as a pure function of the step (so resuming needs no scheduler state)."""

from __future__ import annotations

import math

from ..config import TrainConfig


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Multiplier of ``cfg.lr`` for optimizer step ``step`` (1-based).

    Linear warmup over ``warmup_steps``, then constant or a half-cosine decay
    to ``min_lr_ratio`` at ``cfg.steps`` (Loshchilov & Hutter, 2017, arXiv:1608.03983).
    """
    if cfg.warmup_steps and step <= cfg.warmup_steps:
        return step / cfg.warmup_steps
    if cfg.schedule == "constant":
        return 1.0
    span = max(cfg.steps - cfg.warmup_steps, 1)
    progress = min(max(step - cfg.warmup_steps, 0) / span, 1.0)
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
