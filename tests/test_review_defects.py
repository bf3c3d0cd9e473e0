"""The defects an independent test of the CLI, the checkpoints and the math found (issue 8), one test each:
every one ends in a clear one-line error (exit code 2, no traceback) or in the right behaviour."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file, save_file

from flowforge import RunError, load, load_config
from flowforge.config import ConfigError
from flowforge.runs import RunLock, checkpoint_dirs, latest_checkpoint, load_run, read_metrics
from flowforge.runs.checkpoint import save_checkpoint
from flowforge.train import train

CLI = [sys.executable, "-m", "flowforge.cli"]


def cli(*args, cwd=None):
    proc = subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    return proc


def assert_clean_error(proc, *words):
    """Exit code 2, one error line naming the problem, no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    for word in words:
        assert word in proc.stderr, (word, proc.stderr)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny trained moons run, copied per test that edits it."""
    from conftest import tiny_overrides

    root = tmp_path_factory.mktemp("trained")
    train(load_config("configs/rf-moons.yaml", tiny_overrides(root / "run")), progress=False)
    return root / "run"


@pytest.fixture
def run_copy(trained, tmp_path):
    shutil.copytree(trained, tmp_path / "run")
    return tmp_path / "run"


# 1. one writer per run directory


def test_a_second_training_into_a_locked_run_stops_with_the_holder(tmp_path, tiny):
    cfg = load_config("configs/rf-moons.yaml", tiny(tmp_path / "run"))
    with RunLock(tmp_path / "run"):
        with pytest.raises(RunError, match=rf"in use by process {os.getpid()}"):
            train(cfg, progress=False)
    assert latest_checkpoint(tmp_path / "run") is None  # nothing was written by the refused run
    train(cfg, progress=False)  # released: the run goes ahead


def test_a_stale_lock_of_a_dead_process_is_recovered(tmp_path, tiny):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / ".lock").write_text("999999999")  # the file of a killed run; its lock died with it
    train(load_config("configs/rf-moons.yaml", tiny(tmp_path / "run")), progress=False)
    assert latest_checkpoint(tmp_path / "run") is not None


def test_a_checkpoint_write_removes_only_dead_processes_temp_dirs(run_copy):
    root = run_copy / "checkpoints"
    alive = root / f".tmp-step-0000005-{os.getppid()}"  # a live process's write in progress
    dead = root / ".tmp-step-0000005-999999999"
    alive.mkdir()
    dead.mkdir()
    run = load_run(run_copy, ema=False)
    optimizer = torch.optim.AdamW(run.model.parameters())
    save_checkpoint(run_copy, 30, model=run.model, optimizer=optimizer, ema=None,
                    state={"data": run.data}, keep_last=5)
    assert alive.is_dir() and not dead.exists()


# 2. a checkpoint is bound to the model it was trained as


def test_an_edited_model_section_is_refused_naming_the_key(run_copy):
    path = run_copy / "config.yaml"
    path.write_text(path.read_text().replace("target: velocity", "target: eps"))
    with pytest.raises(RunError, match=r"model.target was 'velocity', config.yaml says 'eps'"):
        load(run_copy)
    assert_clean_error(cli("sample", run_copy, "--n", "10", "--out", run_copy / "x.npy"), "model.target")
    assert not (run_copy / "x.npy").exists()


# 3. OS errors and allocations


def test_os_errors_and_huge_sample_counts_are_one_line(run_copy, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("")
    assert_clean_error(cli("sample", run_copy, "--n", "4", "--out", afile / "x.npy"), str(afile), "File exists")
    assert_clean_error(cli("sample", run_copy, "--n", "10000000000000", "--out", tmp_path / "x.npy"), "GiB",
                       "draw fewer")
    assert_clean_error(cli("train", "configs/rf-moons.yaml", f"run.dir={afile}", "train.steps=2"), str(afile))


# 4. malformed state.json


@pytest.mark.parametrize("content", ['"x"', "3", "[1, 2]", '{"step": "10", "data": {"shape": [2]}}',
                                     '{"step": 10}', '{"step": 10, "data": {"shape": "2"}}', "{not json"])
def test_malformed_state_names_the_checkpoint_to_delete(run_copy, content):
    ckpt = latest_checkpoint(run_copy)
    (ckpt / "state.json").write_text(content)
    with pytest.raises(RunError, match=rf"{ckpt.name}.*delete this checkpoint directory"):
        load(run_copy)


def test_damaged_random_state_on_resume_names_the_checkpoint(run_copy, tiny):
    ckpt = latest_checkpoint(run_copy)
    state = json.loads((ckpt / "state.json").read_text())
    state["rng"] = [{"torch": "garbage", "numpy": 1, "python": None}]
    (ckpt / "state.json").write_text(json.dumps(state))
    cfg = load_config("configs/rf-moons.yaml", tiny(run_copy, **{"train.steps": 30}))
    with pytest.raises(RunError, match=rf"{ckpt.name}: its saved random state is damaged"):
        train(cfg, resume=True, progress=False)


# 5. a listed sampler on a path whose default grid it cannot use


def test_edm_stochastic_on_the_linear_path_gets_a_grid_it_can_use(run_copy):
    proc = cli("sample", run_copy, "--n", "8", "--out", run_copy / "x.npy", "--sampler", "edm-stochastic")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert_clean_error(cli("sample", run_copy, "--n", "8", "--out", run_copy / "y.npy", "--sampler",
                           "edm-stochastic", "--grid", "uniform"), "infinite noise", "karras")
    proc = cli("eval", run_copy, "--n", "50", "--sampler", "edm-stochastic", "--grid", "karras", "--steps", "4")
    assert proc.returncode == 0, proc.stderr[-2000:]


# 6. an empty config file; 10. a config that is not UTF-8


@pytest.mark.parametrize("text, words", [(b"", ["is empty", "configs/"]), (b"# nothing\n", ["is empty"]),
                                         (b"run:\n  name: caf\xe9\n", ["not UTF-8", "byte"])])
def test_empty_or_non_utf8_config_is_refused(tmp_path, text, words):
    path = tmp_path / "c.yaml"
    path.write_bytes(text)
    with pytest.raises(ConfigError):
        load_config(path)
    assert_clean_error(cli("train", path), *words)
    assert not (tmp_path / "runs").exists()


# 7. the NaN guard's advice works: lr and grad_clip may change on resume


def test_resume_may_lower_the_learning_rate_and_records_it(run_copy, tiny):
    cfg = load_config("configs/rf-moons.yaml", tiny(run_copy, **{"train.steps": 30, "train.lr": 2.5e-4,
                                                                 "train.grad_clip": 0.5}))
    train(cfg, resume=True, progress=False)
    (record,) = [r for r in read_metrics(run_copy) if r.get("kind") == "resume"]
    assert record["changed"]["train.lr"][1] == 2.5e-4 and record["changed"]["train.grad_clip"] == [1.0, 0.5]


# 8. non-finite samples are refused everywhere


def test_nan_weights_give_no_samples_file(run_copy):
    for name in ("model.safetensors", "ema.safetensors"):
        path = latest_checkpoint(run_copy) / name
        save_file({k: v * float("nan") for k, v in load_file(path).items()}, str(path))
    assert_clean_error(cli("sample", run_copy, "--n", "10", "--out", run_copy / "x.npy"), "NaN/inf")
    assert not (run_copy / "x.npy").exists()
    assert_clean_error(cli("eval", run_copy, "--n", "10"), "NaN/inf")


# 9. inpaint validates its arguments like sample


def test_inpaint_validates_out_and_lr(run_copy):
    assert_clean_error(cli("inpaint", run_copy, "--mask", "left", "--out", run_copy / "x.npy"), ".png")
    assert_clean_error(cli("inpaint", run_copy, "--mask", "left", "--out", run_copy / "x.png", "--lr", "nan"),
                       "--lr nan")


# 11. info skips a metrics line that is JSON but not a record


def test_info_skips_non_record_lines(run_copy):
    with open(run_copy / "metrics.jsonl", "a") as f:
        f.write("[1, 2]\n\"text\"\n{\"step\": \"x\"}\n")
    proc = cli("info", run_copy)
    assert proc.returncode == 0, proc.stderr
    assert "continuous model on the `linear` path" in proc.stdout


# 12. a short train.steps override below a preset's warmup


def test_warmup_longer_than_the_run_is_clamped_with_a_warning():
    from flowforge.train.schedule import lr_factor

    cfg = load_config("configs/rf-moons.yaml", ["train.warmup_steps=500", "train.steps=50"])
    assert cfg.train.warmup_steps == 500  # the config keeps what was asked; the schedule clamps, training warns
    assert lr_factor(25, cfg.train) == 0.5 and lr_factor(50, cfg.train) == 1.0


# the protocol: every family says what it is, and no option is silently ignored


def test_a_flow_refuses_sampler_options_and_info_names_the_family(tmp_path, tiny):
    over = tiny(tmp_path / "run", **{"model.kind": "glow", "data.name": "checkerboard"})
    over = [o for o in over if not o.startswith("model.net.")] + ["model.flow.hidden=16",
                                                                  "model.flow.steps_per_level=2"]
    train(load_config("configs/glow-checkerboard.yaml", over), progress=False)
    model = load(tmp_path / "run")
    with pytest.raises(TypeError):
        model.sample(4, sampler="heun")  # a misspelt or foreign option is an error, never swallowed
    assert model.sample(4, temperature=0.5).shape == (4, 2)
    assert_clean_error(cli("sample", tmp_path / "run", "--n", "4", "--out", tmp_path / "x.npy", "--sampler",
                           "heun"), "normalizing flow", "sampler")
    proc = cli("info", tmp_path / "run")
    assert proc.returncode == 0 and "Glow:" in proc.stdout and "mlp" not in proc.stdout.lower(), proc.stdout
    assert [p.name for p in checkpoint_dirs(tmp_path / "run")]


# found by review: what the fixes above missed


def test_a_checkpoint_from_before_a_new_model_setting_still_loads(run_copy):
    """A setting added to flowforge after a checkpoint was written passes at its default, fails otherwise."""
    ckpt = latest_checkpoint(run_copy)
    state = json.loads((ckpt / "state.json").read_text())
    del state["model"]["net"]["dropout"]  # as if dropout did not exist when the checkpoint was written
    (ckpt / "state.json").write_text(json.dumps(state))
    load(run_copy)
    path = run_copy / "config.yaml"
    path.write_text(path.read_text().replace("dropout: 0.0", "dropout: 0.5"))
    with pytest.raises(RunError, match=r"model.net.dropout was None, config.yaml says 0.5"):
        load(run_copy)


def test_a_clamped_warmup_resumes_with_more_steps(tmp_path, tiny):
    constant = {"train.schedule": "constant"}  # a cosine schedule warns differently when train.steps changes
    first = load_config("configs/rf-moons.yaml", tiny(tmp_path / "run", **{"train.steps": 10,
                                                                           "train.warmup_steps": 50, **constant}))
    with pytest.warns(UserWarning, match="warming up over all 10 steps"):
        train(first, progress=False)
    more = load_config("configs/rf-moons.yaml", tiny(tmp_path / "run", **{"train.steps": 20,
                                                                          "train.warmup_steps": 50, **constant}))
    with pytest.warns(UserWarning, match="warming up over all 20 steps"), \
            pytest.warns(UserWarning, match="warms up again"):  # the schedule follows the new length, and says so
        assert train(more, resume=True, progress=False).step == 20


@pytest.mark.parametrize("line", ['{"loss": 1.0}', '{"step": 5}', '{"step": 5, "loss": null, "seconds": 1}',
                                  '{"step": 5, "loss": NaN, "seconds": 1}', '{"kind": "val", "step": 5}'])
def test_records_missing_their_numbers_are_skipped(run_copy, line):
    with open(run_copy / "metrics.jsonl", "a") as f:
        f.write(line + "\n")
    assert all("loss" in r for r in read_metrics(run_copy) if r.get("kind", "train") == "train")
    proc = cli("info", run_copy)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr


def test_allocation_failures_and_huge_seeds_are_one_line(run_copy):
    assert_clean_error(cli("sample", run_copy, "--n", "8", "--out", run_copy / "x.npy", "--seed", str(10**23)),
                       "--seed must be between 0 and")
    assert_clean_error(cli("eval", run_copy, "--n", "10000000000000"), "GiB")
    assert_clean_error(cli("sample", run_copy, "--n", "8", "--out", run_copy / "x.npy", "--steps", "100000000000"),
                       "out of memory")


def test_damaged_eval_json_does_not_fail_a_finished_training(run_copy, tiny):
    (run_copy / "eval.json").write_text("[1]")
    train(load_config("configs/rf-moons.yaml", tiny(run_copy, **{"train.steps": 30})), resume=True, progress=False)
    assert "`eval.json` is unreadable" in (run_copy / "report.md").read_text()


@pytest.mark.parametrize("data", [{"shape": [2], "kind": "points", "value_range": "x"},
                                  {"shape": [2], "kind": "image", "levels": 1.5},
                                  {"shape": [2]}])
def test_bad_data_fields_in_state_name_the_checkpoint(run_copy, data):
    ckpt = latest_checkpoint(run_copy)
    state = json.loads((ckpt / "state.json").read_text())
    state["data"] = data
    (ckpt / "state.json").write_text(json.dumps(state))
    with pytest.raises(RunError, match=rf"{ckpt.name}: state.json has data"):
        load(run_copy)


def test_inpaint_run_uses_the_runs_sample_settings_and_true_labels(tmp_path, tiny, monkeypatch):
    from flowforge.models import ContinuousFlow
    from flowforge.jobs import inpaint_run

    over = [o for o in tiny(tmp_path / "run", **{
        "data.name": "digits", "model.net.name": "unet", "model.net.channels": 8, "model.net.channel_mult": "[1,2]",
        "model.net.attention_levels": "[1]", "model.net.num_res_blocks": 1, "model.num_classes": 10,
        "train.steps": 2, "train.batch_size": 16, "train.warmup_steps": 0, "sample.sampler": "ddim",
        "sample.eta": 0.5, "sample.grid": "shifted", "sample.shift": 2.0, "sample.guidance": 1.5})
        if not o.startswith(("model.net.width", "model.net.depth"))]
    train(load_config("configs/fm-digits.yaml", over), progress=False)
    seen = {}
    real = ContinuousFlow.inpaint

    def spy(self, x, mask, **options):
        seen.update(options)
        return real(self, x, mask, **options)

    monkeypatch.setattr(ContinuousFlow, "inpaint", spy)
    inpaint_run(tmp_path / "run", "left", n=4, out=tmp_path / "i.png", steps=3)
    assert seen["sampler"] == "ddim" and seen["eta"] == 0.5 and seen["grid"] == "shifted"
    assert seen["grid_options"]["shift"] == 2.0 and seen["guidance"] == 1.5 and seen["steps"] == 3
    assert seen["labels"].shape == (4,) and (tmp_path / "i.png").is_file()
