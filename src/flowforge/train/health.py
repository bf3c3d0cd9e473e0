"""Healthy checkpoints: the ones a diverged run can go on from.

The divergence check (:func:`flowforge.train.loop.check_divergence`) stops a run at its first non-finite loss or
gradient, before anything is written. But a run on its way to NaN often writes checkpoints first whose weights
have already blown up (grown a thousandfold: they sample NaN), and resuming one of those with a gentler learning
rate diverges again. So each checkpoint records its weights' root mean square beside the run's reference (that of
its first checkpoint); one whose weights are not finite or have grown more than :data:`GROWTH` times is
*unhealthy*. Pruning always keeps the newest healthy checkpoint, and when the run diverges the unhealthy ones after
it are set aside (``checkpoints/unhealthy-step-N``, which ``--resume`` does not read), so the advice "resume with a
lower train.lr" starts from weights that can recover.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..runs import checkpoint_dirs, read_state

GROWTH = 10.0  # a checkpoint whose weights' RMS is more than this many times the run's reference is unhealthy


def weights_health(model: nn.Module, reference_rms: float | None) -> dict[str, Any]:
    """``{"weights_rms", "reference_rms", "healthy"}`` of ``model``'s weights; the reference is this checkpoint's
    own RMS when the run has none yet."""
    squares, count = torch.zeros((), dtype=torch.float64), 0
    for p in model.parameters():
        squares = squares + p.detach().double().pow(2).sum().cpu()
        count += p.numel()
    rms = math.sqrt(float(squares) / max(count, 1))
    reference = reference_rms if reference_rms is not None else rms
    healthy = math.isfinite(rms) and rms <= GROWTH * reference
    return {"weights_rms": rms if math.isfinite(rms) else None, "reference_rms": reference, "healthy": healthy}


def is_healthy(ckpt: Path) -> bool:
    """Whether checkpoint ``ckpt`` recorded healthy weights (checkpoints from before the record count as healthy)."""
    health = read_state(ckpt).get("health")
    return not isinstance(health, dict) or health.get("healthy") is not False


def newest_healthy(run_dir: Path) -> Path | None:
    """The newest healthy checkpoint of ``run_dir``."""
    return next((c for c in reversed(checkpoint_dirs(run_dir)) if is_healthy(c)), None)


def reference_rms(ckpt: Path | None) -> float | None:
    """The run's reference weight RMS as checkpoint ``ckpt`` recorded it (None: not recorded)."""
    health = read_state(ckpt).get("health") if ckpt is not None else None
    value = health.get("reference_rms") if isinstance(health, dict) else None
    return float(value) if isinstance(value, (int, float)) else None


def set_aside_unhealthy(run_dir: Path, healthy: Path | None) -> list[Path]:
    """Rename the checkpoints newer than ``healthy`` to ``unhealthy-step-N`` (``--resume`` then starts from
    ``healthy``); returns their new paths."""
    moved = []
    for ckpt in checkpoint_dirs(run_dir):
        if healthy is None or ckpt.name > healthy.name:
            target = ckpt.with_name(f"unhealthy-{ckpt.name}")
            if target.exists():  # set aside before, and the run diverged the same way again
                target = ckpt.with_name(f"unhealthy-{ckpt.name}-{os.getpid()}")
            os.rename(ckpt, target)
            moved.append(target)
    return moved


__all__ = ["GROWTH", "is_healthy", "newest_healthy", "reference_rms", "set_aside_unhealthy", "weights_health"]
