"""What an objective reads of the model it trains (a :class:`~flowforge.models.ContinuousFlow`), as a protocol,
so that the objectives do not import the model that holds them."""

from __future__ import annotations

from typing import Protocol

from torch import Tensor, nn

from ...paths import AffinePath


class FlowModel(Protocol):
    """The model an objective trains: a path, a network and what it predicts (see ``ContinuousFlow``)."""

    path: AffinePath
    net: nn.Module
    precond: nn.Module | None
    target: str
    shape: tuple[int, ...]
    sigma_data: float
    num_classes: int | None
    label_dropout: float
    captions: object | None  # flowforge.models.captions.Captions
    quantization: object | None  # flowforge.data.dequantize.Quantization

    @property
    def dims(self) -> int: ...

    def check_batch(self, x: Tensor) -> None: ...

    def to_model_space(self, x: Tensor, u: Tensor | None) -> Tensor: ...

    def net_output(self, x: Tensor, t: Tensor, labels: Tensor | None, interval: Tensor | None = None) -> Tensor: ...


__all__ = ["FlowModel"]
