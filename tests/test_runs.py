"""Run directories: one writer at a time, checkpoints bound to the model that made them, damaged state files
named with the checkpoint to delete, and the metrics log's records read back whole or skipped."""

import json
import os

import pytest
import torch

from flowforge import RunError, load, load_config
from flowforge.runs import RunLock, latest_checkpoint, load_run, read_metrics
from flowforge.runs.checkpoint import save_checkpoint
from flowforge.train import train
from run_helpers import assert_clean_error, cli


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


def test_an_edited_model_section_is_refused_naming_the_key(run_copy):
    path = run_copy / "config.yaml"
    path.write_text(path.read_text().replace("target: velocity", "target: eps"))
    with pytest.raises(RunError, match=r"model.target was 'velocity', config.yaml says 'eps'"):
        load(run_copy)
    assert_clean_error(cli("sample", run_copy, "--n", "10", "--out", run_copy / "x.npy"), "model.target")
    assert not (run_copy / "x.npy").exists()


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


@pytest.mark.parametrize("content", ['"x"', "3", "[1, 2]", '{"step": "10", "data": {"shape": [2]}}',
                                     '{"step": 10}', '{"step": 10, "data": {"shape": "2"}}', "{not json"])
def test_malformed_state_names_the_checkpoint_to_delete(run_copy, content):
    ckpt = latest_checkpoint(run_copy)
    (ckpt / "state.json").write_text(content)
    with pytest.raises(RunError, match=rf"{ckpt.name}.*delete this checkpoint directory"):
        load(run_copy)


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


@pytest.mark.parametrize("line", ['{"loss": 1.0}', '{"step": 5}', '{"step": 5, "loss": null, "seconds": 1}',
                                  '{"step": 5, "loss": NaN, "seconds": 1}', '{"kind": "val", "step": 5}'])
def test_records_missing_their_numbers_are_skipped(run_copy, line):
    with open(run_copy / "metrics.jsonl", "a") as f:
        f.write(line + "\n")
    assert all("loss" in r for r in read_metrics(run_copy) if r.get("kind", "train") == "train")
    proc = cli("info", run_copy)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
