"""Class labels and classifier-free guidance of a class-conditional model, checked once per run."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


def check_labels(num_classes: int | None, labels: Tensor | None, batch: int,
                 device: torch.device, check_values: bool = True) -> Tensor | None:
    """``labels`` as (batch,) long class indices on ``device``; None on a model without classes, and
    ``num_classes`` ("no label") for every example when a class-conditional model gets none.

    A single label is repeated over the batch. The range check reads values back to the host, so a sampler
    calls it once per run, never per network evaluation; the training loss skips it (``check_values=False``):
    the engine checked the data set's labels once, before the first step.
    """
    if num_classes is None:
        if labels is not None:
            raise ValueError("labels were given to a model without classes; train with model.num_classes set")
        return None
    if labels is None:
        return torch.full((batch,), num_classes, dtype=torch.long, device=device)  # "no label"
    labels = torch.as_tensor(labels, device=device)
    if labels.is_floating_point() or labels.is_complex():
        raise ValueError(f"labels must be integer class indices, got dtype {labels.dtype}")
    labels = labels.long().reshape(-1)
    if labels.numel() == 1 and batch > 1:
        labels = labels.expand(batch)
    if labels.shape != (batch,):
        raise ValueError(f"expected {batch} labels, got shape {tuple(labels.shape)}")
    if check_values and (bool((labels < 0).any()) or bool((labels > num_classes).any())):
        raise ValueError(f"labels must be in 0..{num_classes - 1} (or {num_classes} for no label)")
    return labels


@dataclass(frozen=True)
class Conditioning:
    """What a sampler's network evaluations are conditioned on: checked labels (batch,) or None, and the
    classifier-free guidance weight ``w`` that applies (1 when there is nothing to guide); for a text model,
    the captions' token ids ``text`` (batch, L) instead of labels.

    Guidance mixes the conditional and the unconditional prediction as ``uncond + w (cond - uncond)``
    (Ho & Salimans, 2022, arXiv:2207.12598); label ``num_classes`` is "no label", the empty caption (all
    padding) "no text".
    """

    labels: Tensor | None = None
    guidance: float = 1.0
    text: Tensor | None = None

    @classmethod
    def check(cls, num_classes: int | None, labels: Tensor | None, batch: int, device: torch.device,
              guidance: float = 1.0) -> Conditioning:
        """Validate once per run: guidance needs classes, labels must be class indices of the right shape."""
        if guidance != 1.0 and num_classes is None:
            raise ValueError(f"guidance={guidance} needs a class-conditional model (model.num_classes set in "
                             f"training); this model has no classes, so sample it with guidance=1")
        labels = check_labels(num_classes, labels, batch, device)
        if labels is None or bool((labels == num_classes).all()):
            guidance = 1.0  # unconditional: one pass
        return cls(labels, guidance)


def drop_labels(labels: Tensor, drop: Tensor, num_classes: int) -> Tensor:
    """``labels`` with "no label" (``num_classes``) where ``drop`` (batch,) is True: the training side of
    classifier-free guidance, one network learning the conditional and the unconditional field."""
    return torch.where(drop, torch.full_like(labels, num_classes), labels)
