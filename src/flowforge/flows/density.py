"""NSF and MAF, the density estimators of tabular and low-dimensional data, as builders from a
:class:`~flowforge.config.FlowConfig` and the data's spec (``shape``, and ``context_dim`` for conditional data)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ..config import FlowConfig
from ..data.dequantize import Quantization
from ..nets import MADE, CouplingMLP
from ..transforms import (Coupling, ElementwiseMap, Inverted, MaskedAutoregressive, MonotonicAffine, RationalQuadratic,
                          SplineShape, StandardGaussian, half_mask)
from .flow import NormalizingFlow


def layer_orders(dim: int, layers: int, kind: str, seed: int = 0) -> list[torch.Tensor]:
    """The input degrees (a permutation of 1..D) of each autoregressive layer: ``1..D`` first, then reversed
    every other layer (MAF's default, arXiv:1705.07057, §3.2) or a seeded random order per layer.

    Example:
        >>> [o.tolist() for o in layer_orders(3, 3, "reversed")]
        [[1, 2, 3], [3, 2, 1], [1, 2, 3]]
    """
    natural = torch.arange(1, dim + 1)
    if kind == "reversed":
        return [natural if i % 2 == 0 else natural.flip(0) for i in range(layers)]
    gen = torch.Generator().manual_seed(seed)
    return [natural] + [torch.randperm(dim, generator=gen) + 1 for _ in range(layers - 1)]


def _autoregressive(fc: FlowConfig, dim: int, context: int, map: ElementwiseMap) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for order in layer_orders(dim, fc.couplings, fc.order):
        made = MADE(dim, map.params, fc.hidden, fc.hidden_layers, order=order, context=context)
        layer = MaskedAutoregressive(dim, made, map)
        layers.append(Inverted(layer) if fc.direction == "iaf" else layer)
    return layers


def _couplings(fc: FlowConfig, dim: int, context: int, map: ElementwiseMap) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for i in range(fc.couplings):
        mask = half_mask(dim, i % 2)
        kept = int(mask.sum())
        net = CouplingMLP((kept,), (dim - kept, map.params), fc.hidden, fc.hidden_layers, context=context)
        layers.append(Coupling(mask, net, map))
    return layers


def _vector_flow(layers: list[nn.Module], data: dict[str, Any], context: int) -> NormalizingFlow:
    shape = tuple(data["shape"])
    return NormalizingFlow(StandardGaussian(), layers, shape, Quantization.from_spec(data),
                           flatten=len(shape) != 1, context=context)


def _dims(data: dict[str, Any]) -> tuple[int, int]:
    dim = math.prod(data["shape"])
    if dim < 2:
        raise ValueError(f"NSF and MAF model vectors of at least 2 features; the data has shape {data['shape']}")
    return dim, int(data.get("context_dim") or 0)


def nsf(fc: FlowConfig, data: dict[str, Any]) -> NormalizingFlow:
    """Neural spline flow (Durkan et al., 2019, arXiv:1906.04032): ``couplings`` rational-quadratic spline layers
    (``bins`` bins on ``[-tail_bound, tail_bound]``), autoregressive (RQ-NSF (AR), MADE conditioners with
    alternating orders) or coupling (RQ-NSF (C), alternating halves), each conditioner ``hidden_layers`` x
    ``hidden``; Gaussian prior. Images are flattened; a data spec with ``context_dim`` makes it conditional."""
    dim, context = _dims(data)
    spline = RationalQuadratic(SplineShape(bins=fc.bins, bound=fc.tail_bound))
    build = _autoregressive if fc.conditioner == "autoregressive" else _couplings
    return _vector_flow(build(fc, dim, context, spline), data, context)


def maf(fc: FlowConfig, data: dict[str, Any]) -> NormalizingFlow:
    """Masked autoregressive flow (Papamakarios et al., 2017, arXiv:1705.07057): ``couplings`` MADE-driven
    layers with ``order`` orders, each an affine map (MAF) or a spline (``elementwise``); ``direction=iaf`` inverts
    every layer (IAF: sampling in one pass, density in D). Images are flattened; ``context_dim`` conditions it."""
    dim, context = _dims(data)
    map = (MonotonicAffine() if fc.elementwise == "affine"
           else RationalQuadratic(SplineShape(bins=fc.bins, bound=fc.tail_bound)))
    return _vector_flow(_autoregressive(fc, dim, context, map), data, context)


__all__ = ["layer_orders", "maf", "nsf"]
