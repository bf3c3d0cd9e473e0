"""NICE, RealNVP and Glow as builders from a :class:`~flowforge.config.FlowConfig` and the data's spec (``shape``, and
``context_dim`` for a conditional flow :math:`p(x \\mid c)`: every coupling's conditioner then reads ``c``, the MLPs
as more inputs, the convolutional nets as more constant channels)."""

from __future__ import annotations

import math
from typing import Any

from torch import nn

from ..config import FlowConfig
from ..data.dequantize import Quantization
from ..errors import UserError
from ..nets import CouplingMLP, CouplingResNet, GlowConditioner
from ..transforms import (ActNorm, AdditiveCoupling, AffineCoupling, Compose, FactorOut, InvertibleConv1x1, Logit,
                          Scaling, Squeeze, StandardGaussian, StandardLogistic, Unsqueeze, channel_mask,
                          checkerboard_mask, half_mask)
from .flow import NormalizingFlow

PRIORS: dict[str, type[nn.Module]] = {"gaussian": StandardGaussian, "logistic": StandardLogistic}


def _quantization(data: dict[str, Any]) -> Quantization | None:
    return Quantization.from_spec(data)


def _check_divisible(kind: str, shape: tuple[int, ...], squeezes: int) -> None:
    _, h, w = shape
    if h % 2**squeezes or w % 2**squeezes:
        raise UserError(f"model.flow.levels: {kind} squeezes {squeezes} time(s), which needs height and width "
                        f"divisible by {2**squeezes}; the data is {h}x{w}. Lower model.flow.levels.")


def _vector_mlp(dim: int, out: int, fc: FlowConfig, context: int) -> CouplingMLP:
    return CouplingMLP((dim,), (out,), hidden=fc.hidden, layers=fc.hidden_layers, context=context)


def _context(data: dict[str, Any]) -> int:
    return int(data.get("context_dim") or 0)


def nice(fc: FlowConfig, data: dict[str, Any]) -> NormalizingFlow:
    """NICE (Dinh et al., 2015, arXiv:1410.8516, §5): ``couplings`` additive couplings on alternating halves,
    each an MLP of ``hidden_layers`` x ``hidden`` ReLU units over odd / even coordinates, then a diagonal
    scaling (``scaling_init``: ``data`` starts it at the first batch's per-dimension scale, matched to the prior's
    standard deviation; ``zero`` is the paper's start). Images are flattened. The paper's MNIST model is 4
    couplings of 5 x 1000 with the logistic prior."""
    shape, context = tuple(data["shape"]), _context(data)
    dim = math.prod(shape)
    layers = [AdditiveCoupling(half_mask(dim, i % 2, interleave=True), _vector_mlp(dim, dim, fc, context))
              for i in range(fc.couplings)]
    prior = PRIORS[fc.prior]()
    scaling = Scaling((dim,), init=fc.scaling_init, target_std=prior.std)
    return NormalizingFlow(prior, [*layers, scaling], shape, _quantization(data), flatten=len(shape) > 1,
                           context=context)


def _realnvp_level(fc: FlowConfig, c: int, h: int, w: int, level: int, context: int) -> list[nn.Module]:
    """RealNVP's scale (arXiv:1605.08803, §3.6): checkerboard couplings, squeeze, channel couplings, then half
    the channels are factored out and the next scale acts on the rest; the last scale has one extra
    checkerboard coupling and no squeeze."""
    def coupling(mask, channels):
        net = CouplingResNet(channels, 2 * channels, fc.hidden, fc.blocks, context=context)
        return AffineCoupling(mask, net, fc.scale_fn)

    last = level == fc.levels - 1
    layers: list[nn.Module] = [coupling(checkerboard_mask((c, h, w), i % 2), c)
                               for i in range(fc.couplings + int(last))]
    if last:
        return layers
    c, h, w = 4 * c, h // 2, w // 2
    layers.append(Squeeze())
    layers += [coupling(channel_mask((c, h, w), i % 2), c) for i in range(fc.couplings)]
    inner = Compose(*_realnvp_level(fc, c - c // 2, h, w, level + 1, context))
    layers += [FactorOut(inner, keep=c // 2), Unsqueeze()]
    return layers


def _realnvp_vectors(fc: FlowConfig, dim: int, context: int) -> list[nn.Module]:
    return [AffineCoupling(half_mask(dim, i % 2), _vector_mlp(dim, 2 * dim, fc, context), fc.scale_fn)
            for i in range(fc.couplings)]


def realnvp(fc: FlowConfig, data: dict[str, Any]) -> NormalizingFlow:
    """RealNVP (Dinh et al., 2017, arXiv:1605.08803): multi-scale affine couplings with residual conv
    conditioners on images (after the logit pre-processing of §4.1); alternating-half affine couplings with
    MLP conditioners on vectors."""
    shape, quant, context = tuple(data["shape"]), _quantization(data), _context(data)
    if len(shape) == 3:
        _check_divisible("RealNVP", shape, fc.levels - 1)
        layers = ([Logit(fc.logit_alpha)] if quant is not None and fc.logit_alpha else [])
        layers += _realnvp_level(fc, *shape, level=0, context=context)
    else:
        layers = _realnvp_vectors(fc, math.prod(shape), context)
    return NormalizingFlow(PRIORS[fc.prior](), layers, shape, quant, flatten=len(shape) not in (1, 3),
                           context=context)


def _glow_level(fc: FlowConfig, c: int, h: int, w: int, level: int, context: int) -> list[nn.Module]:
    """Glow's level (Kingma & Dhariwal, 2018, arXiv:1807.03039, Fig. 2): squeeze, K steps of
    ActNorm -> invertible 1x1 conv -> affine coupling, then split off half the channels."""
    c, h, w = 4 * c, h // 2, w // 2
    layers: list[nn.Module] = [Squeeze()]
    for k in range(fc.steps_per_level):
        net = GlowConditioner(c, 2 * c, fc.hidden, context=context)
        layers += [ActNorm(c), InvertibleConv1x1(c, seed=1000 * level + k),
                   AffineCoupling(channel_mask((c, h, w), 0), net, fc.scale_fn)]
    if level < fc.levels - 1:
        layers.append(FactorOut(Compose(*_glow_level(fc, c - c // 2, h, w, level + 1, context)), keep=c // 2))
    layers.append(Unsqueeze())
    return layers


def glow(fc: FlowConfig, data: dict[str, Any]) -> NormalizingFlow:
    """Glow: multi-scale ActNorm / LU 1x1 convolution / affine coupling on images; on vectors the same step
    with the 1x1 convolution as an invertible linear map (LU) and MLP conditioners."""
    shape, quant, context = tuple(data["shape"]), _quantization(data), _context(data)
    if len(shape) == 3:
        _check_divisible("Glow", shape, fc.levels)
        layers = ([Logit(fc.logit_alpha)] if quant is not None and fc.logit_alpha else [])
        layers += _glow_level(fc, *shape, level=0, context=context)
    else:
        dim = math.prod(shape)
        layers = []
        for k in range(fc.steps_per_level):
            layers += [ActNorm(dim), InvertibleConv1x1(dim, seed=k),
                       AffineCoupling(half_mask(dim, 0), _vector_mlp(dim, 2 * dim, fc, context), fc.scale_fn)]
    return NormalizingFlow(PRIORS[fc.prior](), layers, shape, quant, flatten=len(shape) not in (1, 3),
                           context=context)
