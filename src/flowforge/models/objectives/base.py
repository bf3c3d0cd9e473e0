"""What every training objective is: ``objective(model, x, rng, labels) -> loss``, and the steps they share."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from ...rng import BatchRandom
from ..conditioning import check_labels, drop_labels
from .coupling import Coupling, Independent, Paired
from .protocol import FlowModel
from .time_sampling import TimeSampler, Uniform



class Objective:
    """A training objective of a :class:`~flowforge.models.ContinuousFlow`, in the manner of EDM's
    ``training/loss.py`` (Karras et al., 2022): a small object holding its settings, called on a batch as
    ``objective(model, x, rng, labels)`` and returning the scalar to minimise.

    Arguments:
        time_sampler: the law of the training time (default uniform on the path's range).
        coupling: how noise is paired with data (:mod:`~flowforge.models.objectives.coupling`; default
            independent draws). A batch given as :class:`Paired` brings its own pairing (reflow).

    Attributes:
        trains_interval: the network takes MeanFlow's interval ``t - r`` (built with ``interval=True``).
        time_scale: the scale of the time the network's sinusoidal features see, or None for the path's own.
    """

    trains_interval: bool = False
    time_scale: float | None = None

    def __init__(self, time_sampler: TimeSampler | None = None, coupling: Coupling | None = None):
        self.time_sampler = time_sampler or Uniform()
        self.coupling = coupling or Independent()

    @classmethod
    def from_config(cls, cfg: Any, time_sampler: TimeSampler, coupling: Coupling) -> Objective:
        """The objective of a run's ``model`` settings ``cfg`` (read by attribute)."""
        raise NotImplementedError

    def __call__(self, model: FlowModel, x: Tensor | Paired, rng: BatchRandom | None = None,
                 labels: Tensor | None = None) -> Tensor:
        raise NotImplementedError

    def check(self, model: FlowModel) -> None:
        """Raise a ``ValueError`` when ``model`` (path, prediction, classes) cannot train on this objective."""

    def packed(self) -> Objective:
        """The objective on packs of images of several resolutions (``data.resolutions``)."""
        raise ValueError(f"the {type(self).__name__} objective does not train on packs of several resolutions; "
                         f"unset data.resolutions")

    def pair(self, model: FlowModel, x: Tensor | Paired,
             rng: BatchRandom | None) -> tuple[Tensor, Tensor, BatchRandom]:
        """``(x0, eps, rng)``: the batch checked, in model space, with its noise (B, *shape) each, and the batch's
        random stream (a local one if ``rng`` is None). A :class:`Paired` batch is already in model space."""
        data = x.x if isinstance(x, Paired) else x
        model.check_batch(data)
        rng = rng or BatchRandom.local(data.shape[0])
        if isinstance(x, Paired):
            return x.x, x.noise, rng
        x0, noise = self.coupling(model, x, rng)
        return x0, noise, rng


def training_labels(model: FlowModel, labels: Tensor | None, rng: BatchRandom, n: int,
                    like: Tensor) -> Tensor | None:
    """The network's condition in training (None for an unconditional model, which ignores the data set's
    labels): each of the ``n`` labels dropped to "no label" with probability ``model.label_dropout`` (one
    uniform draw per example from ``rng``, for classifier-free guidance), and for a text model made a caption
    by a template drawn from the same stream (B, L); "no label" is the empty caption."""
    if model.num_classes is None:
        return None
    drop = rng.rand((), like=like) < model.label_dropout  # (B,)
    labels = drop_labels(check_labels(model.num_classes, labels, n, like.device, check_values=False),
                         drop, model.num_classes)
    if model.captions is not None:
        labels = model.captions.training_tokens(labels, rng)  # (B, L)
    return labels


__all__ = ["Objective", "training_labels"]
