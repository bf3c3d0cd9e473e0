"""SD3's validation loss: the training objective at fixed times, on fixed held-out examples with fixed noise.

A training loss mixes three kinds of noise: the batch, the noise drawn for it and the times. Esser et al. (2024,
arXiv:2403.03206, Sec. 5.3) track instead a loss with all three held fixed, on held-out data, and find that it
follows the sample-quality scores across model sizes and training. Here, for unit times ``u_k``
(``train.val_times``) mapped onto the path's training range as the time laws map theirs,
``t_k = t_min + u_k (t_max - t_min)``, the first ``train.val_examples`` examples ``x0_i`` of the held-out split and
noise ``eps_i`` drawn once from ``eval.seed``:

.. math:: L_k = \\frac1N \\sum_i w(t_k)\\, \\rho\\big(f_\\theta(x_{t_k,i}, t_k) - y_{t_k,i}\\big), \\qquad
          L = \\frac1K \\sum_k L_k,

with the regression objective's own target ``y``, weight ``w`` and loss ``rho``
(:class:`~flowforge.models.objectives.Regression`). Class labels are never dropped (the conditional loss); a text
model reads each label's caption by the first template. For MeanFlow it is the loss at ``r = t``: the average
velocity over an empty interval regressed on the instantaneous one, ``eps - x0``, squared error per dimension
without the adaptive weight; the rest of MeanFlow's loss has a target built from the network's own derivative,
which moves with the weights. Normalizing flows are refused: their loss is the held-out NLL of ``train.eval_every``.

Everything is drawn from a generator of its own, never torch's global one or a training step's, so logging the
loss leaves the training trajectory unchanged, and a resumed run logs the same curve as an uninterrupted one.
It scores the weights pictures and ``train.eval_every`` use (the EMA copy when there is one), in float32.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..config import Config
from ..data import Dataset
from ..errors import UserError
from ..models.objectives import LOSSES, Independent, Regression
from ..paths import from_x0_eps
from ..rng import BatchRandom, device_generator

CHUNK = 256  # examples per network evaluation


@dataclass(frozen=True)
class ValidationSet:
    """The fixed part of the validation loss: examples ``x0`` in model space (N, *shape), their noise ``eps``
    (N, *shape), their condition (N,) or (N, L) or None, and the unit times ``times`` (K,)."""

    x0: Tensor
    eps: Tensor
    labels: Tensor | None
    times: tuple[float, ...]


def check_validation_settings(config: Config) -> None:
    """Raise a :class:`UserError` naming the fix when ``train.val_*`` cannot be honoured (before any run directory
    is touched)."""
    tc = config.train
    if not tc.val_every:
        return
    if config.model.kind != "continuous":
        raise UserError(f"train.val_every: the validation loss at fixed times is defined for continuous models "
                        f"(model.kind=continuous), not {config.model.kind}; a normalizing flow's loss is its exact "
                        f"NLL, which train.eval_every logs on held-out data: set train.val_every=0 and use "
                        f"train.eval_every")
    times = list(tc.val_times)
    if not times or not all(0.0 < u < 1.0 for u in times) or len(set(times)) != len(times):
        raise UserError(f"train.val_times: got {times!r}, expected distinct unit times strictly inside (0, 1), e.g. "
                        f"[0.1, 0.3, 0.5, 0.7, 0.9] (the ends are excluded: eps and score targets are infinite there)")


def validation_set(config: Config, model: nn.Module, dataset: Dataset, device: torch.device) -> ValidationSet:
    """The held-out examples, noise and condition of ``config``'s validation loss, drawn from ``eval.seed``."""
    check_validation_settings(config)
    n = config.train.val_examples
    held_out = dataset.test
    if n > len(held_out):
        raise UserError(f"train.val_examples: got {n}, but data set {dataset.name!r} holds {len(held_out)} held-out "
                        f"examples; set train.val_examples={len(held_out)} or less")
    x = held_out[:n].to(device)
    rng = BatchRandom(device_generator(device, config.eval.seed), n, 0, n)  # drawn where the model runs
    x0, eps = Independent()(model, x, rng)  # the dequantization noise, then eps: as a training batch draws them
    labels = None
    if model.num_classes is not None:
        if dataset.test_labels is None:
            raise UserError(f"train.val_every: the model is class-conditional but data set {dataset.name!r} has no "
                            f"held-out labels; set train.val_every=0")
        labels = dataset.test_labels[:n].to(device)
        if model.captions is not None:
            labels = model.captions.label_tokens(labels)  # (N, L): each label's caption by the first template
    return ValidationSet(x0, eps, labels, tuple(float(u) for u in config.train.val_times))


def _per_example(model: nn.Module, pred: Tensor, target: Tensor, t: Tensor, coefficients) -> Tensor:
    """The objective's loss of each example (B,): the regression's weighted ``rho``, or MeanFlow's plain L2."""
    err = (pred.float() - target.float()).square().flatten(1).mean(1)  # (B,)
    objective = model.objective
    if not isinstance(objective, Regression):  # MeanFlow at r = t
        return err
    err = LOSSES[objective.loss](err, model.dims, objective.c(model))
    if objective.weighting_of(model) == "none":
        return err
    return objective.loss_weight(model, t, coefficients).flatten().float() * err


@torch.no_grad()
def validation_loss(model: nn.Module, vset: ValidationSet) -> dict[str, object]:
    """``{"loss": L, "by_time": {"u": L_k}}`` of ``model`` (a ContinuousFlow) on ``vset``: the same numbers, bit
    for bit, every time the same weights are scored on the same device."""
    path, n = model.path, len(vset.x0)
    was_training = model.training
    model.eval()
    try:
        by_time = {}
        for u in vset.times:
            total = torch.zeros((), dtype=torch.float64)
            for lo in range(0, n, CHUNK):
                x0, eps = vset.x0[lo:lo + CHUNK], vset.eps[lo:lo + CHUNK]  # (B, *shape)
                t = torch.full((len(x0),), path.train_t_min + u * (path.t_max - path.train_t_min),
                               device=x0.device, dtype=x0.dtype)  # (B,)
                xt = path.sample(x0, eps, t)
                target = from_x0_eps(x0, eps, model.target, xt.coefficients)
                labels = vset.labels[lo:lo + CHUNK] if vset.labels is not None else None
                pred = model.net_output(xt.x_t, t, labels)
                total += _per_example(model, pred, target, t, xt.coefficients).double().sum().cpu()
            by_time[f"{u:g}"] = float(total / n)
    finally:
        model.train(was_training)
    return {"loss": sum(by_time.values()) / len(by_time), "by_time": by_time}


__all__ = ["ValidationSet", "check_validation_settings", "validation_loss", "validation_set"]
