"""Every config choice and its registry agree: a choice without a constructor, or a constructor the config
cannot reach, fails here (DESIGN.md: a new path, layer, sampler or backbone is one file plus one registry line)."""

import dataclasses
import typing

import pytest

from flowforge.config import DataConfig, ModelConfig, NetConfig, SampleConfig
from flowforge.data import LOADERS
from flowforge.models import LOSSES, MODELS, NETS, OBJECTIVES, TIME_SAMPLERS, WEIGHTINGS
from flowforge.paths import PATHS, PREDICTIONS
from flowforge.solvers import GRIDS, SOLVERS


def choices(cls, name):
    tp = typing.get_type_hints(cls)[name]
    args = typing.get_args(tp)
    if typing.get_origin(tp) is not typing.Literal:  # Optional[Literal[...]]
        (tp,) = [a for a in args if a is not type(None)]
        args = typing.get_args(tp)
    return set(args)


@pytest.mark.parametrize("cls, name, registry", [
    (ModelConfig, "kind", MODELS), (ModelConfig, "path", PATHS), (ModelConfig, "target", PREDICTIONS),
    (ModelConfig, "objective", OBJECTIVES), (ModelConfig, "loss", LOSSES),
    (ModelConfig, "time_sampler", TIME_SAMPLERS), (ModelConfig, "weighting", WEIGHTINGS), (NetConfig, "name", NETS),
    (SampleConfig, "sampler", SOLVERS), (SampleConfig, "grid", GRIDS), (DataConfig, "name", LOADERS),
])
def test_config_choices_match_their_registry(cls, name, registry):
    assert choices(cls, name) == set(registry), f"{cls.__name__}.{name} and its registry disagree"


@pytest.mark.parametrize("name", sorted(SOLVERS))
def test_every_sampler_option_is_a_sample_setting(name):
    """A sampler's options are its constructor's arguments; each has a `sample.<lower-case name>` setting, and
    SampleConfig.options() hands exactly those to it."""
    fields = {f.name for f in dataclasses.fields(SampleConfig)}
    for option in SOLVERS[name].option_names():
        assert option.lower() in fields, f"sampler {name!r} option {option!r} has no sample.{option.lower()}"
    opts = SampleConfig(sampler=name).options()
    own = set(opts) - {"sampler", "steps", "grid", "guidance", "grid_options"}
    assert own == set(SOLVERS[name].option_names())
    SOLVERS[name](**{k: opts[k] for k in own})  # the defaults are valid options


@pytest.mark.parametrize("name", sorted(PATHS))
def test_every_path_setting_is_a_model_setting(name):
    fields = {f.name for f in dataclasses.fields(ModelConfig)}
    assert set(PATHS[name].params) <= fields
    defaults = ModelConfig()
    path = PATHS[name](**{k: getattr(defaults, k) for k in PATHS[name].params})
    assert path.t_max > 0


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_every_objective_builds_from_the_config_and_trains(name):
    """An objective's `from_config` reads its settings from the model section; the model's loss calls it."""
    import torch

    from flowforge.models import build_model

    model = build_model(ModelConfig(objective=name), {"shape": [2]})
    assert type(model.objective) is OBJECTIVES[name]
    assert torch.isfinite(model.loss(torch.randn(8, 2)))


def test_a_config_error_names_its_setting_and_a_bug_stays_a_bug(monkeypatch):
    """build_model turns the builders' own ValueErrors into ConfigErrors (chained), and lets others through."""
    from flowforge.config import ConfigError
    from flowforge.models import build_model
    from flowforge.models import build as build_module

    with pytest.raises(ConfigError, match="model: .*unknown weighting") as caught:
        build_model(ModelConfig(weighting="squared"), {"shape": [2]})  # type: ignore[arg-type]
    assert isinstance(caught.value.__cause__, ValueError)

    def deep(*args, **kwargs):
        int("not a number")  # a ValueError raised by Python itself, not by a flowforge check

    family = build_module.MODELS["continuous"]
    monkeypatch.setitem(build_module.MODELS, "continuous", build_module.ModelFamily(deep, family.describe))
    with pytest.raises(ValueError, match="invalid literal"):
        build_model(ModelConfig(), {"shape": [2]})
