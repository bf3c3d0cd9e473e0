"""What every backbone is: one forward signature and a declaration of what it can do.

As diffusers' models declare ``_supports_gradient_checkpointing`` and ``_no_split_modules``, each backbone class
declares its capabilities as attributes, and the layers above (``models/build.py``, ``train/``) ask the net
(or the net class, through ``flowforge.models.NETS``) instead of naming it.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn


class Backbone(nn.Module):
    """A network ``f(x, t, cond=None, interval=None)`` that knows nothing of paths or training.

    Arguments of :meth:`forward`, the same for every backbone:

    - ``x`` (B, *shape): the point on the path; ``t`` (B,): its time (or EDM's ``c_noise``);
    - ``cond``: class labels (B,) int64 in ``[0, num_classes]`` (``num_classes`` the null label), or for a
      :attr:`reads_text` net caption token ids (B, L); ``None`` is the null condition;
    - ``interval`` (B,): MeanFlow's ``t - r``, for a net built with :attr:`takes_interval`; ``None`` is 0.

    A net refuses with a ``ValueError`` an input it does not take (labels to a net built without classes, an
    interval to a net built without one), never ignores it. The output has ``x``'s shape.

    Attributes:
        shard_unit: the block class that FSDP shards as one unit (gathered for its forward alone); ``None``: the
            net is not sharded (``train.distributed=fsdp`` refuses it).
        packs: the net has ``forward_packed(xs, t, cond)``: images of several resolutions packed into one token
            sequence (``data.resolutions``).
        reads_text: ``cond`` is caption token ids (B, L) and ``cond_size`` a vocabulary; else class labels (B,).
        takes_interval: the net was built to take MeanFlow's interval (an instance attribute where the
            constructor's ``interval`` decides it).
        can_checkpoint: the net can recompute its blocks' activations in the backward pass (its constructor's
            ``checkpoint``, ``model.net.checkpoint``).
    """

    shard_unit: type[nn.Module] | None = None
    packs: bool = False
    reads_text: bool = False
    takes_interval: bool = False
    can_checkpoint: bool = False

    def forward(self, x: Tensor, t: Tensor, cond: Tensor | None = None, interval: Tensor | None = None) -> Tensor:
        raise NotImplementedError

    @classmethod
    def from_config(cls, cfg: Any, shape: tuple[int, ...], time_scale: float, cond_size: int | None,
                    interval: bool = False) -> Backbone:
        """The net of a run's ``model.net`` settings ``cfg`` (read by attribute: nets import only torch) for
        examples of ``shape``; ``cond_size`` is the number of classes (``None``: unconditional) or, for a
        :attr:`reads_text` net, the size of the captions' vocabulary; ``interval`` builds MeanFlow's input."""
        raise NotImplementedError

    @staticmethod
    def describe(cfg: Any) -> str:
        """One line saying what the net of ``model.net`` settings ``cfg`` is (``flowforge info``, run reports)."""
        raise NotImplementedError


__all__ = ["Backbone"]
