"""Couplings: how a training batch pairs each data point ``x0`` with its noise ``eps``.

Flow matching trains on any coupling of data and noise (Tong et al., 2024, arXiv:2302.00482): independent
draws, a minibatch optimal-transport plan (straighter paths), or pairs fixed in advance, such as reflow's
(noise, ODE end point) pairs (Liu et al., 2023, arXiv:2209.03003), which come with the batch (:class:`Paired`).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from ...rng import BatchRandom
from .ot import ot_permutation
from .protocol import FlowModel



class Coupling:
    """``coupling(model, x, rng) -> (x0, eps)``: data ``x`` (B, ...) in model space and its noise (B, ...).

    Draws, from ``rng``: the dequantization noise of discrete data, then the Gaussian noise.
    """

    def __call__(self, model: FlowModel, x: Tensor, rng: BatchRandom) -> tuple[Tensor, Tensor]:
        shape = tuple(x.shape[1:])
        x0 = model.to_model_space(x, rng.rand(shape, like=x) if model.quantization is not None else None)
        return x0, rng.randn(shape, like=x)  # (B, ...) each


class Independent(Coupling):
    """``eps ~ N(0, I)`` drawn independently of the data: flow matching's and diffusion's coupling."""


class MinibatchOT(Coupling):
    """Independent draws re-paired by the exact optimal-transport plan within the batch (OT-CFM,
    :func:`~flowforge.models.objectives.ot.ot_permutation`)."""

    def __call__(self, model: FlowModel, x: Tensor, rng: BatchRandom) -> tuple[Tensor, Tensor]:
        x0, noise = super().__call__(model, x, rng)
        return x0, noise[ot_permutation(x0, noise)]


@dataclass(frozen=True)
class Paired:
    """A batch that brings its own coupling: data ``x`` (B, *shape), already in model space (continuous end
    points: no dequantization, no OT pairing), each row with its noise ``noise`` (B, *shape).

    Example:
        >>> import torch
        >>> from flowforge.models import ContinuousFlow
        >>> from flowforge.nets import MLP
        >>> from flowforge.paths import LinearPath
        >>> model = ContinuousFlow(LinearPath(), MLP((2,), width=8, depth=1), (2,))
        >>> x, noise = torch.randn(8, 2), torch.randn(8, 2)  # e.g. reflow's ODE end points and their noise
        >>> model.loss(Paired(x, noise)).shape
        torch.Size([])
    """

    x: Tensor
    noise: Tensor

    def __post_init__(self) -> None:
        if self.noise.shape != self.x.shape:
            raise ValueError(f"paired noise must have the data's shape {tuple(self.x.shape)}, got "
                             f"{tuple(self.noise.shape)}")


__all__ = ["Coupling", "Independent", "MinibatchOT", "Paired"]
