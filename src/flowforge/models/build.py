"""Build a model from its typed config: registries of real constructors, no string lookups.

``data`` is the run's data spec (``data.json``): ``shape``, ``kind``, ``levels``, ``value_range``.
Each registry here is the one source of truth for its config choice; a test checks that the
config's ``Literal`` and the registry's keys agree.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..config import ConfigError, ModelConfig
from ..data.dequantize import Quantization
from ..flows import glow, maf, nice, nsf, realnvp
from ..nets import MLP, Backbone, DiT, MMDiT, UNet
from ..paths import PATHS
from ..protocol import GenerativeModel
from .autoencoder import build_autoencoder, describe_autoencoder
from .captions import CLASS_NAMES, TEMPLATES, Captions, WordTokenizer
from .continuous import ContinuousFlow
from .objectives import (OBJECTIVES, WEIGHTINGS, CosMap, GridTimes, Independent, LogitNormal, LogNormalSigma,
                         MinibatchOT, ModeSampling, TimeSampler, Uniform)

EDM_TIME_SCALE = 1.0  # EDM feeds c_noise = ln(sigma) / 4 to the sinusoidal features unscaled
UNIT_TIME_SCALE = 1000.0  # t in [0, 1] scaled to DDPM's step range


# The backbones of model.net.name. Each class builds itself from model.net (``Backbone.from_config``), says what
# it is (``Backbone.describe``) and declares what it can do (``reads_text``, ``packs``, ``shard_unit``,
# ``takes_interval``, ``can_checkpoint``), which this module and train/ ask instead of naming a net: a new
# backbone is one file in nets/ and one line here.
NETS: dict[str, type[Backbone]] = {"mlp": MLP, "unet": UNet, "dit": DiT, "mmdit": MMDiT}


TIME_SAMPLERS: dict[str, Callable[[ModelConfig], TimeSampler]] = {
    "uniform": lambda cfg: Uniform(cfg.time_shift),
    "logit-normal": lambda cfg: LogitNormal(cfg.logit_mean, cfg.logit_std, cfg.time_shift),
    "mode": lambda cfg: ModeSampling(cfg.mode_scale, cfg.time_shift),
    "cosmap": lambda cfg: CosMap(cfg.time_shift),
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
    objective = OBJECTIVES[cfg.objective].from_config(cfg, TIME_SAMPLERS[cfg.time_sampler](cfg),
                                                      MinibatchOT() if cfg.ot_coupling else Independent())
    net_class, captions = NETS[cfg.net.name], build_captions(cfg, data, vocabulary)
    if net_class.reads_text and captions is None:
        raise ValueError(f"model.net.name={cfg.net.name} reads captions: set model.text.captions=class-names "
                         f"(and model.num_classes)")
    if captions is not None and not net_class.reads_text:
        readers = " or ".join(name for name, net in NETS.items() if net.reads_text)
        raise ValueError(f"model.text.captions needs a backbone that reads text (model.net.name={readers}), "
                         f"not {cfg.net.name}")
    if cfg.net.checkpoint and not net_class.can_checkpoint:
        raise ValueError(f"model.net.checkpoint: model.net.name={cfg.net.name} has no blocks to checkpoint; set "
                         f"model.net.checkpoint=false")
    time_scale = EDM_TIME_SCALE if precond else objective.time_scale or UNIT_TIME_SCALE
    net = net_class.from_config(cfg.net, shape, time_scale,
                                captions.tokenizer.size if captions is not None else cfg.num_classes,
                                interval=objective.trains_interval)
    quantization = Quantization.from_spec(data) if cfg.dequantize else None
    return ContinuousFlow(
        PATHS[cfg.path](sigma_min=cfg.sigma_min, sigma_max=cfg.sigma_max), net, shape,
        target=cfg.target, precond=cfg.sigma_data if precond else None, objective=objective,
        num_classes=cfg.num_classes, label_dropout=cfg.label_dropout if cfg.num_classes is not None else 0.0,
        quantization=quantization, value_range=tuple(data["value_range"]) if quantization is not None else None,
        captions=captions)


def _describe_continuous(cfg: ModelConfig) -> str:
    what = (f"EDM-preconditioned denoiser (sigma_data {cfg.sigma_data})" if cfg.precond == "edm"
            else f"`{cfg.target}` target")
    if cfg.objective == "mean-flow":
        m = cfg.meanflow
        what = (f"average velocity (MeanFlow: r != t on {m.ratio:.0%} of pairs, adaptive weight p = {m.p}"
                f"{f', guidance {m.guidance} built in' if m.guidance != 1 else ''})")
    classes = f", {cfg.num_classes} classes (label dropout {cfg.label_dropout})" if cfg.num_classes else ""
    if cfg.text.captions != "none":
        templates = cfg.text.templates or TEMPLATES
        held = ("none held out" if cfg.text.heldout is None or not -len(templates) <= cfg.text.heldout < len(templates)
                else f"{templates[cfg.text.heldout]!r} held out")
        classes = (f", captions of {cfg.num_classes} class names by {len(templates)} templates ({held}; caption "
                   f"dropout {cfg.label_dropout})")
    pairs = ", noise and data paired by minibatch OT" if cfg.ot_coupling else ""
    return (f"continuous model on the `{cfg.path}` path, {what}, {cfg.time_sampler} training time{pairs}{classes}; "
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


def _describe_nsf(cfg: ModelConfig) -> str:
    f = cfg.flow
    how = "autoregressive (MADE)" if f.conditioner == "autoregressive" else "coupling (MLP)"
    return (f"NSF: {f.couplings} rational-quadratic spline layers ({f.bins} bins on [-{f.tail_bound:g}, "
            f"{f.tail_bound:g}]), {how} conditioners {f.hidden_layers}x{f.hidden}, Gaussian prior")


def _describe_maf(cfg: ModelConfig) -> str:
    f = cfg.flow
    return (f"{f.direction.upper()}: {f.couplings} masked autoregressive {f.elementwise} layers ({f.order} orders), "
            f"MADE {f.hidden_layers}x{f.hidden}, Gaussian prior")


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
    "nsf": ModelFamily(_flow(nsf), _describe_nsf),
    "maf": ModelFamily(_flow(maf), _describe_maf),
    "autoencoder": ModelFamily(build_autoencoder, describe_autoencoder),
}


def build_model(cfg: ModelConfig, data: dict[str, Any], vocabulary: Sequence[str] | None = None) -> GenerativeModel:
    """The model described by ``cfg`` for the data described by ``data`` (at least ``{"shape": [...]}``); a text
    model's tokenizer has the run's saved ``vocabulary`` when given (:func:`flowforge.runs.read_vocabulary`)."""
    try:
        return MODELS[cfg.kind].build(cfg, data, vocabulary)
    except ValueError as err:
        if not _raised_by_flowforge(err):  # torch's or numpy's: a bug to see whole, not a setting to name
            raise
        raise ConfigError(f"model: {err}") from err


def _raised_by_flowforge(err: BaseException) -> bool:
    """Whether ``err`` was raised by flowforge's own code (a builder, or the constructor of a net, flow, path or
    objective checking its arguments), which names the setting at fault, rather than deeper in a library."""
    tb = err.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and tb.tb_frame.f_globals.get("__name__", "").startswith("flowforge.")


def describe_model(cfg: ModelConfig) -> str:
    """One line saying what the model of ``cfg`` is, for ``flowforge info`` and the run report."""
    return MODELS[cfg.kind].describe(cfg)


__all__ = ["MODELS", "NETS", "TIME_SAMPLERS", "WEIGHTINGS", "ModelFamily", "build_captions", "build_model",
           "describe_model"]
