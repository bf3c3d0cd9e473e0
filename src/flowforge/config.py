"""Typed run configuration: dataclasses, YAML presets and dotted overrides.

A run is described by one :class:`Config`. Presets live as YAML files in
``configs/``; the command line overrides single fields with dotted keys::

    flowforge train configs/rf-checkerboard.yaml train.steps=3000 model.net.width=256

Every field is typed. Choices are ``Literal`` types and numeric bounds live in
the field's metadata, so a wrong key, type or value is reported with the key,
the bad value and what would be accepted (:class:`ConfigError`), never with a
traceback.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from .errors import UserError


class ConfigError(UserError, ValueError):
    """A user error in a configuration file or override."""


def _bounded(default: Any, lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
             hi_open: bool = False) -> Any:
    return field(default=default, metadata={"min": lo, "max": hi, "min_open": lo_open, "max_open": hi_open})


MAX_SEED = 2**63 - 1_000_000  # torch seeds are 64-bit; evaluation adds small offsets to its seed


TOY_DATASETS = ("moons", "circles", "8gaussians", "checkerboard", "pinwheel", "spirals", "swissroll")
IMAGE_DATASETS = ("digits", "mnist", "fashion-mnist", "cifar10")
FILE_DATASETS = ("array", "image-folder")

DatasetName = Literal[
    "moons", "circles", "8gaussians", "checkerboard", "pinwheel", "spirals", "swissroll",
    "digits", "mnist", "fashion-mnist", "cifar10", "array", "image-folder",
]


@dataclass
class RunConfig:
    name: str = "run"
    dir: str = ""  # where the run writes; empty means runs/<name>
    seed: int = _bounded(0, 0, MAX_SEED)

    @property
    def path(self) -> Path:
        return Path(self.dir or f"runs/{self.name}")


@dataclass
class DataConfig:
    name: DatasetName = "checkerboard"
    n_train: int = _bounded(10000, 1)  # toy sets: points drawn for training
    n_test: int = _bounded(5000, 1)  # toy sets: held-out points
    noise: float | None = _bounded(None, 0.0)  # toy sets: noise level; None = the set's customary value
    seed: int = _bounded(0, 0, MAX_SEED)  # seed of the data draw (toy sets) or of the split (digits)
    path: str | None = None  # array / image-folder: file or folder to read
    key: str | None = None  # array: array name inside an .npz file
    image_shape: list[int] | None = None  # array: reshape each row to (C, H, W)
    image_size: int | None = _bounded(None, 1)  # image-folder: resize to this square size
    channels: Literal[1, 3] = 1  # image-folder: 1 = grayscale, 3 = RGB
    image_range: Literal["symmetric", "unit"] = "symmetric"  # images in [-1, 1] or [0, 1]
    cache_dir: str | None = None  # downloads; None = $FLOWFORGE_CACHE or ~/.cache/flowforge
    download: bool = True  # fetch from the canonical source when no local copy exists


@dataclass
class NetConfig:
    name: Literal["mlp", "unet"] = "mlp"
    width: int = _bounded(256, 1)  # mlp: hidden units
    depth: int = _bounded(3, 1)  # mlp: hidden layers
    time_embed_dim: int = _bounded(64, 2)
    activation: Literal["silu", "relu", "gelu"] = "silu"  # mlp
    channels: int = _bounded(32, 1)  # unet: channels at full resolution
    channel_mult: list[int] = field(default_factory=lambda: [1, 2, 2])  # unet: channels per level (x channels)
    num_res_blocks: int = _bounded(2, 1)  # unet: residual blocks per level
    attention_levels: list[int] = field(default_factory=lambda: [2])  # unet: levels with self-attention
    heads: int = _bounded(4, 1)  # unet: attention heads
    dropout: float = _bounded(0.0, 0.0, 1.0, hi_open=True)  # unet


@dataclass
class FlowConfig:
    """Architecture of the discrete normalizing flows (model.kind nice / realnvp / glow)."""

    couplings: int = _bounded(4, 1)  # coupling layers on vectors (NICE: 4); per level on images (RealNVP: 3)
    hidden: int = _bounded(1000, 1)  # conditioner width: MLP units, or conv channels on images
    hidden_layers: int = _bounded(5, 1)  # MLP conditioner hidden layers (NICE: 5)
    blocks: int = _bounded(4, 1)  # residual blocks per RealNVP conv conditioner
    levels: int = _bounded(2, 1)  # multi-scale levels on images (each squeezes 2x and factors out half)
    steps_per_level: int = _bounded(8, 1)  # Glow: flow steps K per level; also Glow's steps on vectors
    prior: Literal["gaussian", "logistic"] = "gaussian"  # NICE uses the logistic
    scale_fn: Literal["tanh", "sigmoid"] = "tanh"  # stabilised affine scale: RealNVP tanh, Glow sigmoid
    logit_alpha: float | None = _bounded(0.05, 0.0, 0.5, lo_open=True, hi_open=True)  # RealNVP/Glow image pre-processing; None = off


@dataclass
class ModelConfig:
    # continuous = flow matching / rectified flow / diffusion (path + net + target); "rectified-flow" is its old name
    kind: Literal["continuous", "rectified-flow", "nice", "realnvp", "glow"] = "continuous"
    path: Literal["linear", "ve", "vp", "vp-cosine", "edm"] = "linear"  # continuous: the noising path
    sigma_min: float = _bounded(0.0, 0.0, 1.0, hi_open=True)  # linear path: flow matching's sigma_min
    sigma_max: float = _bounded(80.0, 0.0, lo_open=True)  # ve / edm paths: largest noise level
    target: Literal["velocity", "x0", "eps", "v", "score"] = "velocity"  # what the net predicts (without precond)
    precond: Literal["none", "edm"] = "none"  # edm: wrap the net in EDM's c_skip/c_out/c_in/c_noise, predict x0
    sigma_data: float = _bounded(0.5, 0.0, lo_open=True)  # EDM's data std: 0.5 for images in [-1, 1]
    time_sampler: Literal["uniform", "logit-normal", "log-normal"] = "uniform"  # training t (log-normal: EDM's sigma)
    logit_mean: float = 0.0  # logit-normal m (SD3: 0)
    logit_std: float = _bounded(1.0, 0.0, lo_open=True)  # logit-normal s (SD3: 1)
    p_mean: float = -1.2  # log-normal: EDM's P_mean
    p_std: float = _bounded(1.2, 0.0, lo_open=True)  # log-normal: EDM's P_std
    time_shift: float = _bounded(1.0, 0.0, lo_open=True)  # SD3's resolution shift of uniform / logit-normal t
    weighting: Literal["none", "edm", "min-snr"] = "none"  # loss weight, given on the x0 error
    num_classes: int | None = _bounded(None, 1)  # class-conditional model on the data set's labels
    label_dropout: float = _bounded(0.1, 0.0, 1.0, hi_open=True)  # class-conditional: P(no label), for guidance
    ot_coupling: bool = False  # pair noise and data by minibatch optimal transport (OT-CFM)
    dequantize: bool = True  # discrete data: uniform dequantization in training and likelihood, as for the flows
    net: NetConfig = field(default_factory=NetConfig)  # continuous: the backbone
    flow: FlowConfig = field(default_factory=FlowConfig)  # nice / realnvp / glow: the flow architecture


@dataclass
class SampleConfig:
    sampler: Literal["euler", "heun", "midpoint", "rk4", "dopri5", "edm-stochastic", "ddim", "ddpm",
                     "dpm++2m"] = "euler"
    steps: int = _bounded(100, 1)  # grid intervals (NFE per step depends on the sampler)
    grid: Literal["uniform", "karras", "shifted"] | None = None  # None: karras if the path's sigma_max is finite
    rho: float = _bounded(7.0, 0.0, lo_open=True)  # karras grid
    shift: float = _bounded(3.0, 0.0, lo_open=True)  # shifted grid
    guidance: float = _bounded(1.0, 0.0)  # classifier-free guidance weight (class-conditional models)
    eta: float = _bounded(0.0, 0.0)  # ddim
    s_churn: float = _bounded(0.0, 0.0)  # edm-stochastic
    s_tmin: float = _bounded(0.0, 0.0)  # edm-stochastic
    s_tmax: float = _bounded(1e9, 0.0)  # edm-stochastic
    s_noise: float = _bounded(1.0, 0.0)  # edm-stochastic
    rtol: float = _bounded(1e-5, 0.0, lo_open=True)  # dopri5
    atol: float = _bounded(1e-5, 0.0, lo_open=True)  # dopri5

    def options(self) -> dict[str, Any]:
        """Keyword arguments of a continuous model's ``sample`` for this sampler (only those it takes)."""
        per_sampler = {"ddim": {"eta": self.eta}, "dopri5": {"rtol": self.rtol, "atol": self.atol},
                       "edm-stochastic": {"S_churn": self.s_churn, "S_tmin": self.s_tmin, "S_tmax": self.s_tmax,
                                          "S_noise": self.s_noise}}
        return {"sampler": self.sampler, "steps": self.steps, "grid": self.grid, "guidance": self.guidance,
                "grid_options": {"rho": self.rho, "shift": self.shift}, **per_sampler.get(self.sampler, {})}


@dataclass
class TrainConfig:
    steps: int = _bounded(2000, 1)
    batch_size: int = _bounded(256, 1)  # global batch, split over processes
    lr: float = _bounded(1e-3, 0.0, lo_open=True)
    weight_decay: float = _bounded(0.0, 0.0)
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    schedule: Literal["constant", "cosine"] = "cosine"
    warmup_steps: int = _bounded(100, 0)
    min_lr_ratio: float = _bounded(0.0, 0.0, 1.0)  # cosine decays to lr * min_lr_ratio
    grad_clip: float | None = _bounded(1.0, 0.0, lo_open=True)  # max global grad norm; None disables
    ema_decay: float | None = _bounded(0.999, 0.0, 1.0, hi_open=True)  # None disables the EMA copy
    precision: Literal["fp32", "bf16"] = "fp32"  # bf16 = bf16 autocast, weights and optimizer stay fp32
    cpu: bool = False  # force CPU even when a GPU is present
    log_every: int = _bounded(50, 1)
    sample_every: int = _bounded(1000, 0)  # 0 disables periodic sample pictures
    eval_every: int = _bounded(0, 0)  # held-out NLL every this many steps (models with likelihoods); 0 = off
    eval_examples: int = _bounded(1000, 1)  # held-out examples scored by eval_every
    ckpt_every: int = _bounded(1000, 1)
    keep_last: int = _bounded(2, 1)  # checkpoints kept on disk
    tensorboard: bool = True


@dataclass
class EvalConfig:
    n_samples: int = _bounded(5000, 2)  # model samples compared with the reference
    n_exact: int = _bounded(2000, 2)  # points used by the exact (POT) Wasserstein-2
    n_projections: int = _bounded(1000, 1)  # sliced Wasserstein-2 directions
    n_likelihood: int = _bounded(0, 0)  # held-out examples scored by the likelihood (the first N); 0 = all
    repeats: int = _bounded(3, 1)  # independent reference draws (toy sets); scores are mean and std over them
    seed: int = _bounded(12345, 0, MAX_SEED)


@dataclass
class Config:
    run: RunConfig = field(default_factory=RunConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


# --------------------------------------------------------------------------- building and checking


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    if origin is list:
        (item,) = typing.get_args(tp)
        return f"a list of {_describe(item)}"
    if tp is type(None):
        return "null"
    return {int: "an integer", float: "a number", bool: "true/false", str: "a string"}.get(tp, str(tp))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Return ``value`` as type ``tp`` or raise :class:`ConfigError` naming ``key``."""
    origin = typing.get_origin(tp)
    bad = ConfigError(f"{key}: got {value!r}, expected {_describe(tp)}")
    if isinstance(value, bool) and (tp is str or (origin is Literal and str in map(type, typing.get_args(tp)))):
        bad = ConfigError(f"{key}: got {value!r}, expected {_describe(tp)} (YAML reads unquoted yes/no/on/off "
                          f"as true/false; quote the value, e.g. {key}='\"no\"')")
    if origin is Literal:
        choices = typing.get_args(tp)
        if value in choices and type(value) is type(choices[choices.index(value)]):
            return value
        raise bad
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError:
                pass
        raise bad
    if origin is list:
        (item,) = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise bad
        return [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise bad
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise bad
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ConfigError(f"{key}: got {value!r}, expected a finite number")
            return float(value)
        if isinstance(value, str):  # YAML reads 1e-3 (no dot) as a string
            try:
                return _coerce(float(value), float, key)
            except ValueError:
                pass
        raise bad
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise bad
    raise TypeError(f"unsupported config type {tp!r} for {key}")  # a bug in this module, not user error


def _check_bounds(value: Any, meta: dict[str, Any], key: str) -> None:
    if value is None or not isinstance(value, (int, float)):
        return
    lo, hi = meta.get("min"), meta.get("max")
    lo_open, hi_open = meta.get("min_open", False), meta.get("max_open", False)
    too_low = lo is not None and (value < lo or (lo_open and value == lo))
    too_high = hi is not None and (value > hi or (hi_open and value == hi))
    if too_low or too_high:
        parts = []
        if lo is not None:
            parts.append(f"{'>' if lo_open else '>='} {lo}")
        if hi is not None:
            parts.append(f"{'<' if hi_open else '<='} {hi}")
        raise ConfigError(f"{key}: got {value!r}, expected a value {' and '.join(parts)}")


def _build(cls: type, data: dict[str, Any], prefix: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping of keys, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields), key=str)
    if unknown:
        where = prefix or "top level"
        raise ConfigError(
            f"unknown key {prefix + '.' if prefix else ''}{unknown[0]} in {where}; valid keys: {', '.join(fields)}"
        )
    kwargs = {}
    for name, value in data.items():
        key = f"{prefix}.{name}" if prefix else name
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            kwargs[name] = _build(tp, value if value is not None else {}, key)
        else:
            kwargs[name] = _coerce(value, tp, key)
            _check_bounds(kwargs[name], dict(fields[name].metadata), key)
    return cls(**kwargs)


def _check(config: Config) -> None:
    """Cross-field rules that a single field's type cannot express."""
    t, d = config.train, config.data
    name = config.run.name
    if not name or name in (".", "..") or "/" in name or "\\" in name:
        raise ConfigError(f"run.name: got {name!r}, expected a plain directory name such as 'rf-moons' "
                          f"(set run.dir to write elsewhere)")
    if config.model.net.time_embed_dim % 2:
        raise ConfigError(f"model.net.time_embed_dim: got {config.model.net.time_embed_dim}, expected an even number "
                          f"(sine and cosine features come in pairs)")
    if len(t.betas) != 2 or not all(0.0 <= b < 1.0 for b in t.betas):
        raise ConfigError(f"train.betas: got {t.betas!r}, expected two numbers in [0, 1)")
    if t.warmup_steps > t.steps:
        raise ConfigError(f"train.warmup_steps: got {t.warmup_steps}, expected at most train.steps ({t.steps})")
    if d.name in FILE_DATASETS and not d.path:
        raise ConfigError(f"data.path: dataset {d.name!r} reads a file; set data.path=/path/to/your/data")
    if d.image_shape is not None and (len(d.image_shape) != 3 or min(d.image_shape) < 1):
        raise ConfigError(f"data.image_shape: got {d.image_shape!r}, expected [channels, height, width]")
    if config.sample.guidance != 1.0 and config.model.num_classes is None:
        raise ConfigError(f"sample.guidance: got {config.sample.guidance}, but the model is not class-conditional; "
                          f"set model.num_classes (and model.label_dropout > 0) or leave sample.guidance at 1")


def from_dict(data: dict[str, Any]) -> Config:
    config = _build(Config, data, "")
    _check(config)
    return config


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``a.b.c=value`` into the key path and the YAML-parsed value."""
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected key=value, e.g. train.steps=3000")
    key, raw = text.split("=", 1)
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {text!r}: the key is empty or malformed")
    try:
        value = yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError as err:
        raise ConfigError(f"override {text!r}: cannot read the value ({err.__class__.__name__})") from None
    return key.split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of the nested dict ``data`` with dotted ``overrides`` applied."""
    import copy

    out = copy.deepcopy(data)
    for text in overrides:
        parts, value = parse_override(text)
        node = out
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"override {text!r}: {'.'.join(parts[: depth + 1])} is a value, not a section")
            node = child
        node[parts[-1]] = value
    return out


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read a YAML preset (or the defaults when ``path`` is None) and apply dotted overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {str(path)!r} not found; presets are in configs/ (e.g. configs/rf-checkerboard.yaml)")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"config file {str(path)!r} is not valid YAML: {err}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"config file {str(path)!r}: expected a mapping of sections (run, data, model, ...)")
    return from_dict(apply_overrides(data, list(overrides)))
