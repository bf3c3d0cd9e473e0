"""Exponential moving average of the weights, on torch's ``AveragedModel``."""

from __future__ import annotations

from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


def make_ema(model: nn.Module, decay: float) -> AveragedModel:
    """An EMA copy of ``model``: ``theta_ema <- decay * theta_ema + (1 - decay) * theta`` after each step.

    Buffers are averaged too (``use_buffers=True``), so the copy is usable as is.
    """
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
    ema.requires_grad_(False)
    return ema
