"""Exponential moving average of the weights, with a decay that grows with the step.

After optimizer step ``t`` (1-based) the average moves towards the weights,

.. math:: \\theta^{ema}_t = \\beta_t \\theta^{ema}_{t-1} + (1 - \\beta_t) \\theta_t ,

and the first update copies the weights. A fixed ``beta = 0.999`` keeps ``0.999^t`` of the *initial* network
in the average (61 % after 500 steps, 67 % after 400), so a short run's EMA samples noise; the schedules below
make ``beta_t`` grow with ``t`` so that the average always covers a fraction of the run:

- ``warmup``: ``beta_t = min(decay, (1 + t) / (10 + t))``, the warm-up of diffusers' ``EMAModel`` (and of
  timm's ``ModelEmaV3`` in spirit): about the last ``t / 9`` steps until ``decay`` caps it (at ``t = 8990``
  for 0.999);
- ``power``: EDM2's power-function EMA, ``beta_t = (1 - 1/t)^(gamma + 1)``, whose averaging profile
  ``~ tau^gamma`` has relative width ``sigma_rel`` at every ``t`` (Karras et al., 2024, arXiv:2312.02696,
  eq. 3 and Algorithm 2); it never caps;
- ``constant``: ``beta_t = decay`` (torch's ``get_ema_multi_avg_fn``; flowforge's only rule before the schedules).

The update is one ``torch._foreach_lerp_`` over the floating-point parameters and buffers (integer buffers are
copied), with no host-device synchronisation.
"""

from __future__ import annotations

import copy
import math
from typing import Callable

import numpy as np
import torch
from torch import Tensor, nn

EMA_SCHEDULES = ("warmup", "power", "constant")


def power_exponent(sigma_rel: float) -> float:
    """EDM2's ``gamma`` for a relative width ``sigma_rel`` of the averaging profile (``std_to_exp``).

    ``sigma_rel^2 = (gamma + 1) / ((gamma + 2)^2 (gamma + 3))``, the largest real root of the cubic
    ``gamma^3 + 7 gamma^2 + (16 - sigma_rel^-2) gamma + (12 - sigma_rel^-2) = 0``.

    >>> round(power_exponent(0.05), 2), round(power_exponent(0.10), 2)
    (16.97, 6.94)
    """
    k = sigma_rel ** -2
    return float(np.roots([1.0, 7.0, 16.0 - k, 12.0 - k]).real.max())


def ema_decay_schedule(schedule: str, decay: float, sigma_rel: float) -> Callable[[int], float]:
    """``beta(t)``, the EMA decay applied after optimizer step ``t >= 1`` (see the module docstring)."""
    if schedule == "constant":
        return lambda t: decay
    if schedule == "warmup":
        return lambda t: min(decay, (1 + t) / (10 + t))
    if schedule == "power":
        gamma = power_exponent(sigma_rel)
        return lambda t: (1 - 1 / t) ** (gamma + 1)
    raise ValueError(f"unknown EMA schedule {schedule!r}; expected one of {', '.join(EMA_SCHEDULES)}")


class EMA(nn.Module):
    """An averaged copy ``module`` of a model, updated by :meth:`update` after each optimizer step.

    Arguments:
        model: the network being trained; copied once, the copy never needs gradients.
        decay_at: ``beta(t)`` for 1-based optimizer step ``t`` (:func:`ema_decay_schedule`).

    ``n_averaged`` counts the updates (checkpointed, so a resumed run copies nothing again).
    """

    def __init__(self, model: nn.Module, decay_at: Callable[[int], float]):
        super().__init__()
        self.module = copy.deepcopy(model).requires_grad_(False)
        self.decay_at = decay_at
        self.n_averaged = 0
        self._pairs: tuple[int, tuple[list[Tensor], ...]] | None = None  # (id(model), tensor lists), see update

    def _apply(self, fn, recurse=True):  # .to() / .cuda() may replace buffers: list the tensors afresh
        self._pairs = None
        return super()._apply(fn, recurse)

    @staticmethod
    def _tensors(module: nn.Module) -> tuple[list[Tensor], list[Tensor]]:
        """Floating-point parameters and buffers, then the other buffers, in a fixed order."""
        floats = [_local(p.detach()) for p in module.parameters()]
        others = []
        for b in module.buffers():
            (floats if b.is_floating_point() else others).append(b)
        return floats, others

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        """Average ``model``'s weights after 1-based optimizer ``step``: ``ema <- lerp(ema, model, 1 - beta)``."""
        if self._pairs is None or self._pairs[0] != id(model):  # listing the tensors walks every submodule:
            self._pairs = (id(model), (*self._tensors(self.module), *self._tensors(model)))  # once, not per step
        mine, my_ints, theirs, their_ints = self._pairs[1]
        if self.n_averaged == 0:
            torch._foreach_copy_(mine, theirs)
        else:
            beta = self.decay_at(step)
            if not 0.0 <= beta <= 1.0 or math.isnan(beta):
                raise ValueError(f"EMA decay {beta} at step {step} is outside [0, 1]")
            torch._foreach_lerp_(mine, theirs, 1.0 - beta)
        for a, b in zip(my_ints, their_ints):
            a.copy_(b)
        self.n_averaged += 1


def _local(tensor: Tensor) -> Tensor:
    """A sharded parameter's shard on this process (train.distributed=fsdp: the EMA copy is sharded like the model,
    so each process averages its own shards); any other tensor as it is."""
    from torch.distributed.tensor import DTensor

    return tensor.to_local() if isinstance(tensor, DTensor) else tensor


def make_ema(model: nn.Module, schedule: str = "warmup", decay: float = 0.999, sigma_rel: float = 0.05) -> EMA:
    """An :class:`EMA` of ``model`` with the decay ``schedule`` (``warmup``, ``power`` or ``constant``)."""
    return EMA(model, ema_decay_schedule(schedule, decay, sigma_rel))
