import subprocess
import warnings
from pathlib import Path
import sys

import pytest
import yaml

from flowforge.config import Config, ConfigError, apply_overrides, from_dict, load_config


def test_defaults_round_trip_through_yaml(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(Config().to_yaml())
    assert load_config(path) == Config()


def test_overrides_are_typed_and_nested():
    cfg = load_config("configs/rf-checkerboard.yaml", ["train.steps=3000", "model.net.width=128", "train.lr=1e-4",
                                                       "train.grad_clip=null", "data.noise=0.1"])
    assert cfg.train.steps == 3000 and cfg.model.net.width == 128
    assert cfg.train.lr == pytest.approx(1e-4) and isinstance(cfg.train.lr, float)
    assert cfg.train.grad_clip is None and cfg.data.noise == 0.1


@pytest.mark.parametrize("override, words", [
    (["train.stepz=10"], ["train.stepz", "valid keys", "steps"]),
    (["train.steps=ten"], ["train.steps", "'ten'", "integer"]),
    (["train.steps=0"], ["train.steps", "0", ">= 1"]),
    (["train.lr=0"], ["train.lr", "> 0.0"]),
    (["train.schedule=linear"], ["train.schedule", "'linear'", "'constant'", "'cosine'"]),
    (["data.name=cifar100"], ["data.name", "cifar100", "checkerboard"]),
    (["train.ema_decay=1.5"], ["train.ema_decay", "1.5", "< 1.0"]),
    (["train.precision=fp16"], ["train.precision", "'bf16'", "'fp32'"]),
    (["data.image_range=no"], ["data.image_range", "quote"]),
    (["train"], ["key=value"]),
    (["train.steps.x=1"], ["train.steps", "a value, not a section"]),
    (["data.name=array"], ["data.path"]),
    (["train.ema_decay=1.0"], ["train.ema_decay", "< 1.0"]),
    (["run.seed=99999999999999999999999"], ["run.seed", "<="]),
    (["model.net.time_embed_dim=3"], ["time_embed_dim", "even"]),
    (["run.name=../x"], ["run.name", "plain directory name"]),
    (["run.name="], ["run.name"]),
    (["sample.guidance=2"], ["sample.guidance", "not class-conditional", "model.num_classes"]),
])
def test_bad_values_name_key_value_and_choices(override, words):
    with pytest.raises(ConfigError) as err:
        load_config("configs/rf-checkerboard.yaml", override)
    for w in words:
        assert w in str(err.value)


def test_bool_is_not_an_int_and_int_is_not_a_bool():
    with pytest.raises(ConfigError, match="train.steps"):
        from_dict({"train": {"steps": True}})
    with pytest.raises(ConfigError, match="train.tensorboard"):
        from_dict({"train": {"tensorboard": 1}})


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_apply_overrides_does_not_mutate_input():
    data = {"train": {"steps": 5}}
    out = apply_overrides(data, ["train.steps=6"])
    assert data["train"]["steps"] == 5 and out["train"]["steps"] == 6


def test_cli_reports_user_error_without_traceback():
    proc = subprocess.run([sys.executable, "-m", "flowforge.cli", "train", "configs/rf-checkerboard.yaml",
                           "train.schedule=linear"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "train.schedule" in proc.stderr and "'cosine'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_help_for_each_command():
    for cmd in ("train", "sample", "eval", "info"):
        proc = subprocess.run([sys.executable, "-m", "flowforge.cli", cmd, "--help"], capture_output=True, text=True)
        assert proc.returncode == 0 and "usage: flowforge " + cmd in proc.stdout


PRESET_DATA = {  # what each data set's loader reports in data.json, without loading it
    "digits": {"shape": [1, 8, 8], "value_range": [-1.0, 1.0], "levels": 17},
    "mnist": {"shape": [1, 28, 28], "value_range": [-1.0, 1.0], "levels": 256},
    "fashion-mnist": {"name": "fashion-mnist", "shape": [1, 28, 28], "value_range": [-1.0, 1.0], "levels": 256},
}


@pytest.mark.parametrize("preset", sorted(p.name for p in (Path(__file__).parents[1] / "configs").glob("*.yaml")))
def test_every_preset_loads_and_builds_its_model(preset):
    import torch

    from flowforge.models import build_model

    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # presets use no deprecated key
        cfg = load_config(Path(__file__).parents[1] / "configs" / preset)
    assert cfg.run.name == preset.removesuffix(".yaml")
    data = PRESET_DATA.get(cfg.data.name, {"shape": [2]})
    if cfg.data.image_range == "unit" and "value_range" in data:
        data = {**data, "value_range": [0.0, 1.0]}
    model = build_model(cfg.model, data)
    lo, hi = data.get("value_range", [-4.0, 4.0])
    x = lo + (hi - lo) * torch.rand(4, *data["shape"], generator=torch.Generator().manual_seed(0))
    assert sum(p.numel() for p in model.parameters()) > 0 and torch.isfinite(model.loss(x))


def test_version_and_python_dash_m():
    import subprocess
    import sys

    import flowforge

    for cmd in ([sys.executable, "-m", "flowforge", "--version"], [sys.executable, "-m", "flowforge.cli", "--version"]):
        proc = subprocess.run(cmd, capture_output=True, text=True)
        assert proc.returncode == 0 and proc.stdout.strip() == f"flowforge {flowforge.__version__}", proc


OLD_MEANFLOW = {"target": "mean-velocity", "meanflow_ratio": 0.5, "meanflow_p": 0.0, "meanflow_guidance": 2.0}


def test_old_flat_objective_keys_are_read_with_a_warning_naming_the_new_ones(tmp_path):
    """model.meanflow_* and model.target=mean-velocity (until this release) still load, from a file and from
    overrides, into model.meanflow.* and model.objective=mean-flow, each with a FutureWarning naming its new key."""
    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump({"model": {**OLD_MEANFLOW, "num_classes": 3}}))
    with pytest.warns(FutureWarning) as seen:
        cfg = load_config(path, ["model.meanflow_kappa=0.25"])
    said = " ".join(str(w.message) for w in seen)
    for old, new in (("model.meanflow_ratio", "model.meanflow.ratio"), ("model.meanflow_kappa", "model.meanflow.kappa"),
                     ("model.target=mean-velocity", "model.objective=mean-flow")):
        assert old in said and new in said
    m = cfg.model
    assert (m.objective, m.target) == ("mean-flow", "velocity")
    assert (m.meanflow.ratio, m.meanflow.p, m.meanflow.guidance, m.meanflow.kappa, m.meanflow.c) == (0.5, 0.0, 2.0, 0.25, 1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        new = load_config(None, ["model.objective=mean-flow", "model.meanflow.ratio=0.5", "model.meanflow.p=0",
                                 "model.meanflow.guidance=2", "model.meanflow.kappa=0.25", "model.num_classes=3"])
    assert new.model == m


def test_old_and_new_keys_that_disagree_are_an_error():
    with pytest.raises(ConfigError, match="meanflow_ratio.*meanflow.ratio"):
        load_config(None, ["model.meanflow.ratio=0.5", "model.meanflow_ratio=0.75"])
    with pytest.raises(ConfigError, match="model.objective=mean-flow"):
        load_config(None, ["model.target=mean-velocity", "model.objective=regression"])
    with pytest.raises(ConfigError, match="unknown key model.meanflow.ratios"):
        load_config(None, ["model.meanflow.ratios=0.5"])


def test_an_old_runs_checkpoint_binds_to_its_config_after_the_move(tmp_path):
    """A checkpoint records the model section it was trained as; one written with the flat keys binds to the
    same config read today (moved keys in their new place), and still refuses an edited one."""
    from flowforge.runs import check_model_binding
    from flowforge.errors import RunError

    defaults = Config().to_dict()["model"]
    old = {k: v for k, v in defaults.items() if k not in ("objective", "meanflow")}
    old.update({**OLD_MEANFLOW, "meanflow_c": 1e-3, "meanflow_kappa": 0.0, "num_classes": 3})
    with pytest.warns(FutureWarning):
        today = from_dict({"model": old}).to_dict()["model"]
    check_model_binding({"model": old}, today, tmp_path, defaults)
    plain = {k: v for k, v in defaults.items() if k not in ("objective", "meanflow")}
    plain.update(meanflow_ratio=0.25, meanflow_p=1.0, meanflow_c=1e-3, meanflow_guidance=1.0, meanflow_kappa=0.0)
    check_model_binding({"model": plain}, defaults, tmp_path, defaults)  # an old flow-matching run
    with pytest.raises(RunError, match="model.meanflow.ratio was 0.5"):
        check_model_binding({"model": old}, {**today, "meanflow": {**today["meanflow"], "ratio": 0.25}}, tmp_path,
                            defaults)
