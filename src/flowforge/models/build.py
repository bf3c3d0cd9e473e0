"""Build a model from its typed config: registries of real constructors, no string lookups.

``data`` is the run's data spec (``data.json``): ``shape``, ``kind``, ``levels``, ``value_range``.
"""

from __future__ import annotations

from typing import Any, Callable

from torch import nn

from ..config import ModelConfig, NetConfig
from ..data.dequantize import Quantization
from ..flows import glow, nice, realnvp
from ..nets import MLP, UNet
from ..paths import EDMPath, LinearPath, VEPath, VPPath, AffinePath
from ..protocol import GenerativeModel
from .continuous import ContinuousFlow
from .time_sampling import LogitNormal, LogNormalSigma, TimeSampler, Uniform

EDM_TIME_SCALE = 1.0  # EDM feeds c_noise = ln(sigma) / 4 to the sinusoidal features unscaled
UNIT_TIME_SCALE = 1000.0  # t in [0, 1] scaled to DDPM's step range


def _mlp(cfg: NetConfig, shape: tuple[int, ...], time_scale: float, num_classes: int | None) -> nn.Module:
    if num_classes is not None:
        raise ValueError("model.net.name=mlp has no class input; use model.net.name=unet for model.num_classes")
    return MLP(shape, width=cfg.width, depth=cfg.depth, time_embed_dim=cfg.time_embed_dim,
               activation=cfg.activation, time_scale=time_scale)


def _unet(cfg: NetConfig, shape: tuple[int, ...], time_scale: float, num_classes: int | None) -> nn.Module:
    if len(shape) != 3:
        raise ValueError(f"model.net.name=unet needs images (C, H, W), the data has shape {shape}; use mlp")
    return UNet(shape, channels=cfg.channels, channel_mult=tuple(cfg.channel_mult), num_res_blocks=cfg.num_res_blocks,
                attention_levels=tuple(cfg.attention_levels), heads=cfg.heads, dropout=cfg.dropout,
                time_embed_dim=cfg.time_embed_dim, num_classes=num_classes, time_scale=time_scale)


NETS: dict[str, Callable[[NetConfig, tuple[int, ...], float, int | None], nn.Module]] = {"mlp": _mlp, "unet": _unet}

PATH_BUILDERS: dict[str, Callable[[ModelConfig], AffinePath]] = {
    "linear": lambda cfg: LinearPath(cfg.sigma_min),
    "ve": lambda cfg: VEPath(cfg.sigma_max),
    "vp": lambda cfg: VPPath("linear"),
    "vp-cosine": lambda cfg: VPPath("cosine"),
    "edm": lambda cfg: EDMPath(cfg.sigma_max),
}

TIME_SAMPLERS: dict[str, Callable[[ModelConfig], TimeSampler]] = {
    "uniform": lambda cfg: Uniform(cfg.time_shift),
    "logit-normal": lambda cfg: LogitNormal(cfg.logit_mean, cfg.logit_std, cfg.time_shift),
    "log-normal": lambda cfg: LogNormalSigma(cfg.p_mean, cfg.p_std),
}


def _continuous(cfg: ModelConfig, data: dict[str, Any]) -> GenerativeModel:
    shape = tuple(data["shape"])
    precond = cfg.precond == "edm"
    net = NETS[cfg.net.name](cfg.net, shape, EDM_TIME_SCALE if precond else UNIT_TIME_SCALE, cfg.num_classes)
    quantization = Quantization.from_spec(data) if cfg.dequantize else None
    return ContinuousFlow(
        PATH_BUILDERS[cfg.path](cfg), net, shape, target=cfg.target, precond=cfg.sigma_data if precond else None,
        time_sampler=TIME_SAMPLERS[cfg.time_sampler](cfg), weighting=cfg.weighting, num_classes=cfg.num_classes,
        label_dropout=cfg.label_dropout if cfg.num_classes is not None else 0.0, ot_coupling=cfg.ot_coupling,
        quantization=quantization, value_range=tuple(data["value_range"]) if quantization is not None else None)


def _flow(builder: Callable) -> Callable[[ModelConfig, dict[str, Any]], GenerativeModel]:
    return lambda cfg, data: builder(cfg.flow, data)


MODELS: dict[str, Callable[[ModelConfig, dict[str, Any]], GenerativeModel]] = {
    "continuous": _continuous, "rectified-flow": _continuous,
    "nice": _flow(nice), "realnvp": _flow(realnvp), "glow": _flow(glow),
}


def build_model(cfg: ModelConfig, data: dict[str, Any]) -> GenerativeModel:
    """The model described by ``cfg`` for the data described by ``data`` (at least ``{"shape": [...]}``)."""
    try:
        return MODELS[cfg.kind](cfg, data)
    except ValueError as err:
        from ..config import ConfigError

        raise ConfigError(f"model: {err}") from None
