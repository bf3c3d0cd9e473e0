"""Typed run configuration: the dataclasses (:mod:`.schema`) and how files and overrides become one
(:mod:`.parse`)."""

from ..errors import ConfigError
from .parse import apply_overrides, from_dict, load_config, parse_override, upgrade_model_section
from .schema import (FILE_DATASETS, MAX_SEED, Config, DataConfig, EvalConfig, FlowConfig, MeanFlowConfig, ModelConfig,
                     NetConfig, RunConfig, SampleConfig, TextConfig, TrainConfig)

__all__ = ["FILE_DATASETS", "MAX_SEED", "Config", "ConfigError", "DataConfig", "EvalConfig", "FlowConfig",
           "MeanFlowConfig", "ModelConfig", "NetConfig", "RunConfig", "SampleConfig", "TextConfig", "TrainConfig",
           "apply_overrides", "from_dict", "load_config", "parse_override", "upgrade_model_section"]
