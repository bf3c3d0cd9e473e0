"""Reading a configuration: YAML presets, dotted overrides, type coercion and cross-field checks.

The command line overrides single fields with dotted keys::

    flowforge train configs/rf-checkerboard.yaml train.steps=3000 model.net.width=256

A wrong key, type or value is reported with the key, the bad value and what
would be accepted (:class:`ConfigError`), never with a traceback.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import types
import typing
import warnings
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from ..errors import ConfigError
from .schema import FILE_DATASETS, Config


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
        close = difflib.get_close_matches(str(unknown[0]), list(fields), n=1)
        hint = f"; did you mean {prefix + '.' if prefix else ''}{close[0]}?" if close else ""
        raise ConfigError(f"unknown key {prefix + '.' if prefix else ''}{unknown[0]} in {where}{hint} "
                          f"(valid keys: {', '.join(fields)})")
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
    if d.name in FILE_DATASETS and not d.path:
        raise ConfigError(f"data.path: dataset {d.name!r} reads a file; set data.path=/path/to/your/data")
    if d.image_shape is not None and (len(d.image_shape) != 3 or min(d.image_shape) < 1):
        raise ConfigError(f"data.image_shape: got {d.image_shape!r}, expected [channels, height, width]")
    if t.compile and config.model.kind != "continuous":
        raise ConfigError(f"train.compile: compiles a continuous model's network; model.kind={config.model.kind!r} "
                          f"has none, set train.compile=false")
    if t.compile and config.model.objective == "mean-flow":
        raise ConfigError("train.compile with model.objective=mean-flow: MeanFlow's target is a torch.func.jvp, "
                          "inside which torch.compile falls back to eager without a word, so nothing would be "
                          "compiled; set train.compile=false (`flowforge sample --compile` does work for it)")
    if t.compile and d.resolutions:
        raise ConfigError("train.compile with data.resolutions: every pack has its own length, so the network would "
                          "compile again for each pack; set train.compile=false (packed attention is compiled anyway)")
    if config.sample.guidance != 1.0 and config.model.num_classes is None:
        raise ConfigError(f"sample.guidance: got {config.sample.guidance}, but the model is not class-conditional; "
                          f"set model.num_classes (and model.label_dropout > 0) or leave sample.guidance at 1")


# Settings moved in this release: the old flat key -> (section, key) of its new place. Both are read until the next
# release, the old one with a FutureWarning naming the new (shown to users, as DeprecationWarning would not be).
MOVED_MODEL_KEYS = {"meanflow_ratio": ("meanflow", "ratio"), "meanflow_p": ("meanflow", "p"),
                    "meanflow_c": ("meanflow", "c"), "meanflow_guidance": ("meanflow", "guidance"),
                    "meanflow_kappa": ("meanflow", "kappa")}
MEAN_VELOCITY = "mean-velocity"  # the old model.target of MeanFlow: now model.objective=mean-flow, target velocity




def upgrade_model_section(model: Any, warn: bool = True) -> Any:
    """A copy of a ``model`` config section with this release's renamed settings in their new place: the flat
    ``meanflow_*`` keys in ``meanflow.*``, and ``target: mean-velocity`` as ``objective: mean-flow`` (whose
    network predicts the average velocity with ``target: velocity``). For YAML files, overrides, old run
    directories and the model section a checkpoint recorded (:func:`flowforge.runs.check_model_binding`)."""
    if not isinstance(model, dict):
        return model  # _build reports it
    out, moved = dict(model), []
    for old, (section, key) in MOVED_MODEL_KEYS.items():
        if old not in out or not isinstance(out.get(section) or {}, dict):
            continue
        value, nested = out.pop(old), dict(out.get(section) or {})
        if key in nested and nested[key] != value:
            raise ConfigError(f"model.{old} (deprecated) is {value!r} but model.{section}.{key} is {nested[key]!r}; "
                              f"keep model.{section}.{key} only")
        out[section] = {**nested, key: value}
        moved.append((f"model.{old}", f"model.{section}.{key}"))
    if out.get("target") == MEAN_VELOCITY:
        if out.get("objective", "mean-flow") != "mean-flow":
            raise ConfigError(f"model.target=mean-velocity (deprecated) means model.objective=mean-flow, but "
                              f"model.objective is {out['objective']!r}; set model.objective=mean-flow only")
        out.update(target="velocity", objective="mean-flow")
        moved.append(("model.target=mean-velocity", "model.objective=mean-flow"))
    if moved and warn:
        warnings.warn(f"{', '.join(old for old, _ in moved)}: deprecated, read until the next release; write "
                      f"{', '.join(new for _, new in moved)} instead", FutureWarning, stacklevel=3)
    return out


def from_dict(data: dict[str, Any]) -> Config:
    if isinstance(data, dict) and "model" in data:
        data = {**data, "model": upgrade_model_section(data["model"])}
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
        data = _read_yaml(Path(path))
    return from_dict(apply_overrides(data, list(overrides)))


def _read_yaml(path: Path) -> dict[str, Any]:
    """The sections of a config file; an empty file is an error (it would silently train the defaults)."""
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} not found; presets are in configs/ "
                          f"(e.g. configs/rf-checkerboard.yaml)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise ConfigError(f"config file {str(path)!r} is not UTF-8 text (byte {err.start}: "
                          f"{err.object[err.start:err.start + 1]!r}); save it as UTF-8") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {str(path)!r} is not valid YAML: {err}") from None
    if data is None or data == {}:
        raise ConfigError(f"config file {str(path)!r} is empty; start from a preset in configs/ "
                          f"(e.g. configs/rf-checkerboard.yaml) and override what you need")
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r}: expected a mapping of sections (run, data, model, ...)")
    return data
