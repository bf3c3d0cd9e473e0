"""The conditioning every backbone shares: the time embedding, the class-label embedding with its null label, and
MeanFlow's interval embedding.

A backbone sums them into one vector per example, ``c = MLP(sin(t)) [+ MLP(sin(t - r))] [+ E[y]]``, which its
blocks read (the U-Net's residual blocks by scale and shift, DiT's and MMDiT's by adaLN-Zero, the MLP's hidden
layers by addition). The modules keep the layouts (``nn.Sequential`` indices, ``nn.Embedding``) the nets had when
each held its own copy, so the state-dict keys of saved checkpoints are unchanged.

References:
    Ho, Jain, Abbeel (2020). Denoising Diffusion Probabilistic Models (the sinusoidal time MLP).
    https://arxiv.org/abs/2006.11239
    Ho, Salimans (2022). Classifier-Free Diffusion Guidance (the null label). https://arxiv.org/abs/2207.12598
    Geng et al. (2025). Mean Flows for One-step Generative Modeling (the interval ``t - r``, Table 1c).
    https://arxiv.org/abs/2505.13447
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class SinusoidalEmbedding(nn.Module):
    """Fixed sinusoidal features of a scalar, as in the Transformer / DDPM.

    .. math:: e(t)_k = [\\cos(s t \\omega_k), \\sin(s t \\omega_k)], \\quad \\omega_k = 10000^{-k / (d/2)}

    ``scale`` maps the scalar's natural range to the range the frequencies were
    designed for (DDPM feeds integer steps 0..1000, so ``t`` in [0, 1] uses 1000).

    Arguments:
        dim: output size, even.
        scale: factor applied to the input before the features.

    Shapes: ``t`` (batch,) -> (batch, dim).
    """

    def __init__(self, dim: int, scale: float = 1000.0, max_period: float = 10000.0):
        super().__init__()
        if dim % 2:
            raise ValueError(f"embedding dim must be even, got {dim}")
        half = dim // 2
        freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
        self.register_buffer("freqs", freqs, persistent=False)
        self.scale = scale

    def forward(self, t: Tensor) -> Tensor:
        args = (self.scale * t.float())[:, None] * self.freqs[None]  # (B, dim/2)
        return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)  # (B, dim)


def zero_module(module: nn.Module) -> nn.Module:
    """``module`` with every parameter set to zero (it starts as a no-op branch)."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class TimeEmbedding(nn.Sequential):
    """``MLP(sin(t))``: :class:`SinusoidalEmbedding` of ``scale * t`` then a small MLP, the time input of every net.

    DDPM's layout ``[sin, Linear, act, Linear]`` (U-Net, DiT, MMDiT), or with ``shallow`` one layer and its
    activation ``[sin, Linear, act]`` (the MLP, whose hidden layers each project it again). ``zero_init`` zeroes
    the last linear map, so the embedding starts at 0 (with ``shallow``: at ``act(0)``).

    Arguments:
        features: size of the sinusoidal features (even).
        dim: output size.
        scale: factor on ``t`` before the features: 1000 for ``t`` in [0, 1], 1 for EDM's ``c_noise``.
        activation: the MLP's nonlinearity.
        shallow: one linear layer instead of two.
        zero_init: the last linear map starts at zero.

    Shapes: ``t`` (B,) -> (B, dim).

    Example:
        >>> embed = TimeEmbedding(16, 32, scale=1000.0)
        >>> embed(torch.rand(3)).shape, [type(m).__name__ for m in embed]
        (torch.Size([3, 32]), ['SinusoidalEmbedding', 'Linear', 'SiLU', 'Linear'])
    """

    def __init__(self, features: int, dim: int, scale: float, activation: type[nn.Module] = nn.SiLU,
                 shallow: bool = False, zero_init: bool = False):
        first = nn.Linear(features, dim)
        if shallow:
            super().__init__(SinusoidalEmbedding(features, scale=scale), zero_module(first) if zero_init else first,
                             activation())
        else:
            last = nn.Linear(dim, dim)
            super().__init__(SinusoidalEmbedding(features, scale=scale), first, activation(),
                             zero_module(last) if zero_init else last)

    @property
    def linears(self) -> list[nn.Linear]:
        """The linear maps, first to last (a net's initialisation scheme sets them)."""
        return [m for m in self if isinstance(m, nn.Linear)]


class IntervalEmbedding(TimeEmbedding):
    """MeanFlow's second time, the interval ``t - r``, embedded like ``t`` and zero at initialisation, so a net
    built with it starts as the velocity net it was without (Geng et al. 2025, Table 1c: condition on
    ``(t, t - r)``). Arguments and shapes: as :class:`TimeEmbedding`."""

    def __init__(self, features: int, dim: int, scale: float, activation: type[nn.Module] = nn.SiLU,
                 shallow: bool = False):
        super().__init__(features, dim, scale, activation, shallow, zero_init=True)


def add_interval(emb: Tensor, interval_embed: nn.Module | None, interval: Tensor | None) -> Tensor:
    """A time embedding ``emb`` (B, D) plus the embedding of an average-velocity model's interval ``t - r`` (B,).

    A net built without an interval embedding refuses one; a net built with one treats a missing interval as 0
    (``r = t``: the instantaneous velocity).
    """
    if interval_embed is None:
        if interval is not None:
            raise ValueError("an interval t - r was given to a net built without one (interval=False)")
        return emb
    if interval is None:
        interval = torch.zeros(emb.shape[0], device=emb.device, dtype=emb.dtype)
    return emb + interval_embed(interval)


class LabelEmbedding(nn.Embedding):
    """A learnt vector per class label, plus the *null* label ``num_classes`` (classifier-free guidance: the
    trainer drops labels to it, the sampler mixes the two predictions). ``labels=None`` means all null.

    The label range is checked once per run by the model (``flowforge.models.conditioning``), not here: a check
    of values reads them back to the host on every forward.

    Shapes: ``labels`` (B,) integer in ``[0, num_classes]`` or ``None``, ``t`` (B,) -> (B, dim).

    Example:
        >>> embed = LabelEmbedding(10, 8)
        >>> bool(torch.equal(embed(None, torch.rand(2)), embed(torch.tensor([10, 10]), torch.rand(2))))
        True
    """

    def __init__(self, num_classes: int, dim: int):
        if num_classes < 1:
            raise ValueError(f"num_classes must be positive or None, got {num_classes}")
        super().__init__(num_classes + 1, dim)
        self.num_classes = num_classes

    def forward(self, labels: Tensor | None, t: Tensor) -> Tensor:  # type: ignore[override]
        if labels is None:
            labels = torch.full((t.shape[0],), self.num_classes, dtype=torch.long, device=t.device)  # all null
        elif labels.shape != t.shape or labels.dtype.is_floating_point or labels.dtype == torch.bool:
            raise ValueError(f"class labels must be integer labels of shape {tuple(t.shape)}, got {labels.dtype} "
                             f"{tuple(labels.shape)}")
        return super().forward(labels)  # (B, dim)


def add_labels(emb: Tensor, label_embed: LabelEmbedding | None, labels: Tensor | None, t: Tensor,
               net: str) -> Tensor:
    """A time embedding ``emb`` (B, D) plus the embedding of class ``labels`` (B,) (``None``: the null label); a
    ``net`` built without classes (``label_embed`` None) refuses labels."""
    if label_embed is None:
        if labels is not None:
            raise ValueError(f"class labels were given to a {net} built with num_classes=None")
        return emb
    return emb + label_embed(labels, t)  # (B, D)


__all__ = ["IntervalEmbedding", "LabelEmbedding", "SinusoidalEmbedding", "TimeEmbedding", "add_interval",
           "add_labels", "zero_module"]
