"""Build a model from its typed config: registries of real constructors, no string lookups.

``data`` is the run's data spec (``data.json``): ``shape``, ``kind``, ``levels``, ``value_range``.
Each registry here is the one source of truth for its config choice; a test checks that the
config's ``Literal`` and the registry's keys agree.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from ..config import ConfigError, ModelConfig, NetConfig
from ..config.schema import MEAN_VELOCITY
from ..data.dequantize import Quantization
from ..flows import glow, nice, realnvp
from ..nets import MLP, DiT, MMDiT, UNet
from ..paths import PATHS
from ..protocol import GenerativeModel
from .captions import CLASS_NAMES, TEMPLATES, Captions, WordTokenizer
from .continuous import WEIGHTINGS, ContinuousFlow
from .mean_flow import MeanFlow
from .time_sampling import GridTimes, LogitNormal, LogNormalSigma, TimeSampler, Uniform

EDM_TIME_SCALE = 1.0  # EDM feeds c_noise = ln(sigma) / 4 to the sinusoidal features unscaled
UNIT_TIME_SCALE = 1000.0  # t in [0, 1] scaled to DDPM's step range
# MeanFlow's target holds the network's d/dt: sinusoids of 1000 t change up to 1000x per unit time, which makes
# that derivative, and the target, noisy. Measured (2-D Gaussian data, std 0.3, MLP 2x64, 400 steps): one-step
# samples' std 0.05 / 0.09 with 1000 t, 0.21 / 0.19 with t itself (Euler at 100 steps: 0.25).
MEAN_FLOW_TIME_SCALE = 1.0


@dataclass(frozen=True)
class NetSpec:
    """A backbone: how to build it from its config, and a one-line description of its size.

    ``build``'s last argument is the number of classes, or for a backbone that reads ``text`` the size of the
    captions' vocabulary.
    """

    build: Callable[..., nn.Module]  # (config, shape, time_scale, num_classes[, interval=True for MeanFlow])
    describe: Callable[[NetConfig], str]
    text: bool = False


def _mlp(cfg: NetConfig, shape: tuple[int, ...], time_scale: float, num_classes: int | None,
         interval: bool = False) -> nn.Module:
    if num_classes is not None:
        raise ValueError("model.net.name=mlp has no class input; use model.net.name=unet for model.num_classes")
    return MLP(shape, width=cfg.width, depth=cfg.depth, time_embed_dim=cfg.time_embed_dim,
               activation=cfg.activation, time_scale=time_scale, interval=interval)


def _unet(cfg: NetConfig, shape: tuple[int, ...], time_scale: float, num_classes: int | None,
          interval: bool = False) -> nn.Module:
    if len(shape) != 3:
        raise ValueError(f"model.net.name=unet needs images (C, H, W), the data has shape {shape}; use mlp")
    return UNet(shape, channels=cfg.channels, channel_mult=tuple(cfg.channel_mult), num_res_blocks=cfg.num_res_blocks,
                attention_levels=tuple(cfg.attention_levels), heads=cfg.heads, dropout=cfg.dropout,
                time_embed_dim=cfg.time_embed_dim, num_classes=num_classes, time_scale=time_scale,
                interval=interval)


def _dit(cfg: NetConfig, shape: tuple[int, ...], time_scale: float, num_classes: int | None,
         interval: bool = False) -> nn.Module:
    if len(shape) != 3:
        raise ValueError(f"model.net.name=dit needs images (C, H, W), the data has shape {shape}; use mlp")
    return DiT(shape, size=cfg.size, patch=cfg.patch, qk_norm=cfg.qk_norm, positions=cfg.positions,
               checkpoint=cfg.checkpoint, time_embed_dim=cfg.time_embed_dim, num_classes=num_classes,
               time_scale=time_scale, interval=interval)


def _mmdit(cfg: NetConfig, shape: tuple[int, ...], time_scale: float, vocab_size: int) -> nn.Module:
    if len(shape) != 3:
        raise ValueError(f"model.net.name=mmdit needs images (C, H, W), the data has shape {shape}")
    return MMDiT(shape, vocab_size, size=cfg.size, patch=cfg.patch, qk_norm=cfg.qk_norm, positions=cfg.positions,
                 checkpoint=cfg.checkpoint, time_embed_dim=cfg.time_embed_dim, time_scale=time_scale)


NETS: dict[str, NetSpec] = {
    "mlp": NetSpec(_mlp, lambda n: f"MLP {n.depth}x{n.width} ({n.activation})"),
    "unet": NetSpec(_unet, lambda n: f"U-Net, {n.channels} channels x {n.channel_mult}, "
                                     f"{n.num_res_blocks} res blocks/level, attention at levels {n.attention_levels}"),
    "dit": NetSpec(_dit, lambda n: f"DiT-{n.size}/{n.patch}, {n.positions} positions"
                                   f"{', QK-norm' if n.qk_norm else ''}{', checkpointed blocks' if n.checkpoint else ''}"),
    "mmdit": NetSpec(_mmdit, lambda n: f"MMDiT-{n.size}/{n.patch} (image and caption streams), {n.positions} "
                                       f"positions{', QK-norm' if n.qk_norm else ''}"
                                       f"{', checkpointed blocks' if n.checkpoint else ''}", text=True),
}

TIME_SAMPLERS: dict[str, Callable[[ModelConfig], TimeSampler]] = {
    "uniform": lambda cfg: Uniform(cfg.time_shift),
    "logit-normal": lambda cfg: LogitNormal(cfg.logit_mean, cfg.logit_std, cfg.time_shift),
    "log-normal": lambda cfg: LogNormalSigma(cfg.p_mean, cfg.p_std),
    "grid": lambda cfg: GridTimes(cfg.grid_steps),
}


def build_captions(cfg: ModelConfig, data: dict[str, Any], vocabulary: Sequence[str] | None = None) -> Captions | None:
    """The captions of a text model (``model.text``), with the run's saved ``vocabulary`` if given; else None."""
    text = cfg.text
    if text.captions == "none":
        return None
    if cfg.num_classes is None:
        raise ValueError("model.text.captions=class-names makes captions of the data set's labels: set "
                         "model.num_classes")
    names = text.class_names or CLASS_NAMES.get(data.get("name"))
    if names is None:
        raise ValueError(f"model.text.captions=class-names: data set {data.get('name')!r} has no built-in class "
                         f"names (only {', '.join(CLASS_NAMES)}); set model.text.class_names")
    if len(names) != cfg.num_classes:
        raise ValueError(f"model.text.class_names has {len(names)} names for model.num_classes={cfg.num_classes}")
    return Captions(names, text.templates or TEMPLATES, text.heldout,
                    WordTokenizer(vocabulary) if vocabulary is not None else None)


def _continuous(cfg: ModelConfig, data: dict[str, Any], vocabulary: Sequence[str] | None = None) -> GenerativeModel:
    shape = tuple(data["shape"])
    precond = cfg.precond == "edm"
    mean_flow = None
    if cfg.target == MEAN_VELOCITY:
        if cfg.net.checkpoint:
            raise ValueError("model.net.checkpoint cannot be combined with MeanFlow (model.target=mean-velocity): "
                             "torch.utils.checkpoint cannot replay the forward-mode JVP of its target; set "
                             "model.net.checkpoint=false")
        mean_flow = MeanFlow(ratio=cfg.meanflow_ratio, p=cfg.meanflow_p, c=cfg.meanflow_c,
                             guidance=cfg.meanflow_guidance, kappa=cfg.meanflow_kappa)
    spec, captions = NETS[cfg.net.name], build_captions(cfg, data, vocabulary)
    if spec.text and captions is None:
        raise ValueError(f"model.net.name={cfg.net.name} reads captions: set model.text.captions=class-names "
                         f"(and model.num_classes)")
    if captions is not None and not spec.text:
        raise ValueError(f"model.text.captions needs a backbone that reads text (model.net.name=mmdit), "
                         f"not {cfg.net.name}")
    if mean_flow is not None and spec.text:
        raise ValueError(f"MeanFlow (model.target=mean-velocity) needs a backbone with an interval input (mlp, unet, "
                         f"dit); model.net.name={cfg.net.name} has none yet")
    time_scale = EDM_TIME_SCALE if precond else MEAN_FLOW_TIME_SCALE if mean_flow is not None else UNIT_TIME_SCALE
    net = spec.build(cfg.net, shape, time_scale, captions.tokenizer.size if captions is not None else cfg.num_classes,
                     **({"interval": True} if mean_flow is not None else {}))
    quantization = Quantization.from_spec(data) if cfg.dequantize else None
    return ContinuousFlow(
        PATHS[cfg.path](sigma_min=cfg.sigma_min, sigma_max=cfg.sigma_max), net, shape,
        target="velocity" if mean_flow is not None else cfg.target,
        precond=cfg.sigma_data if precond else None, time_sampler=TIME_SAMPLERS[cfg.time_sampler](cfg),
        weighting=cfg.weighting, loss=cfg.loss, huber_c=cfg.huber_c, num_classes=cfg.num_classes,
        label_dropout=cfg.label_dropout if cfg.num_classes is not None else 0.0, ot_coupling=cfg.ot_coupling,
        quantization=quantization, value_range=tuple(data["value_range"]) if quantization is not None else None,
        mean_flow=mean_flow, captions=captions)


def _describe_continuous(cfg: ModelConfig) -> str:
    what = (f"EDM-preconditioned denoiser (sigma_data {cfg.sigma_data})" if cfg.precond == "edm"
            else f"`{cfg.target}` target")
    if cfg.target == MEAN_VELOCITY:
        what += (f" (MeanFlow: r != t on {cfg.meanflow_ratio:.0%} of pairs, adaptive weight p = {cfg.meanflow_p}"
                 f"{f', guidance {cfg.meanflow_guidance} built in' if cfg.meanflow_guidance != 1 else ''})")
    classes = f", {cfg.num_classes} classes (label dropout {cfg.label_dropout})" if cfg.num_classes else ""
    if cfg.text.captions != "none":
        templates = cfg.text.templates or TEMPLATES
        held = ("none held out" if cfg.text.heldout is None or not -len(templates) <= cfg.text.heldout < len(templates)
                else f"{templates[cfg.text.heldout]!r} held out")
        classes = (f", captions of {cfg.num_classes} class names by {len(templates)} templates ({held}; caption "
                   f"dropout {cfg.label_dropout})")
    return (f"continuous model on the `{cfg.path}` path, {what}, {cfg.time_sampler} training time{classes}; "
            f"{NETS[cfg.net.name].describe(cfg.net)}")


def _flow(builder: Callable) -> Callable[..., GenerativeModel]:
    def build(cfg: ModelConfig, data: dict[str, Any], vocabulary: Sequence[str] | None = None) -> GenerativeModel:
        if cfg.num_classes is not None:
            raise ValueError(f"model.num_classes: the {cfg.kind} flow has no class input; unset model.num_classes")
        if cfg.text.captions != "none":
            raise ValueError(f"model.text.captions: the {cfg.kind} flow has no text input; unset it")
        return builder(cfg.flow, data)

    return build


def _describe_nice(cfg: ModelConfig) -> str:
    f = cfg.flow
    return (f"NICE: {f.couplings} additive couplings, MLP conditioners {f.hidden_layers}x{f.hidden}, diagonal "
            f"scaling, {f.prior} prior")


def _describe_realnvp(cfg: ModelConfig) -> str:
    f = cfg.flow
    return (f"RealNVP: {f.couplings} affine couplings per level ({f.scale_fn} scale), {f.levels} levels on images, "
            f"conditioner width {f.hidden} ({f.blocks} residual blocks on images, {f.hidden_layers} layers on "
            f"vectors), {f.prior} prior")


def _describe_glow(cfg: ModelConfig) -> str:
    f = cfg.flow
    return (f"Glow: {f.levels} levels x {f.steps_per_level} steps (ActNorm, invertible 1x1 convolution, affine "
            f"coupling with {f.scale_fn} scale), conditioner width {f.hidden}, {f.prior} prior")


@dataclass(frozen=True)
class ModelFamily:
    """A ``model.kind``: how to build it from the config and the data's spec, and how to describe it."""

    build: Callable[..., GenerativeModel]  # (config, data spec, saved caption vocabulary or None)
    describe: Callable[[ModelConfig], str]


MODELS: dict[str, ModelFamily] = {
    "continuous": ModelFamily(_continuous, _describe_continuous),
    "nice": ModelFamily(_flow(nice), _describe_nice),
    "realnvp": ModelFamily(_flow(realnvp), _describe_realnvp),
    "glow": ModelFamily(_flow(glow), _describe_glow),
}


def build_model(cfg: ModelConfig, data: dict[str, Any], vocabulary: Sequence[str] | None = None) -> GenerativeModel:
    """The model described by ``cfg`` for the data described by ``data`` (at least ``{"shape": [...]}``); a text
    model's tokenizer has the run's saved ``vocabulary`` when given (:func:`flowforge.runs.read_vocabulary`)."""
    try:
        return MODELS[cfg.kind].build(cfg, data, vocabulary)
    except ValueError as err:
        raise ConfigError(f"model: {err}") from None


def describe_model(cfg: ModelConfig) -> str:
    """One line saying what the model of ``cfg`` is, for ``flowforge info`` and the run report."""
    return MODELS[cfg.kind].describe(cfg)


__all__ = ["MODELS", "NETS", "TIME_SAMPLERS", "WEIGHTINGS", "ModelFamily", "NetSpec", "build_captions", "build_model",
           "describe_model"]
