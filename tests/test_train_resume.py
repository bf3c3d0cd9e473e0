"""Resuming a run: a damaged random state is named, the learning rate and clipping may change (the NaN guard's
advice), a warm-up longer than the run is clamped and follows a longer run, and a damaged eval.json never fails a
finished training."""

import json

import pytest

from flowforge import RunError, load_config
from flowforge.runs import latest_checkpoint, read_metrics
from flowforge.train import train


def test_damaged_random_state_on_resume_names_the_checkpoint(run_copy, tiny):
    ckpt = latest_checkpoint(run_copy)
    state = json.loads((ckpt / "state.json").read_text())
    state["rng"] = [{"torch": "garbage", "numpy": 1, "python": None}]
    (ckpt / "state.json").write_text(json.dumps(state))
    cfg = load_config("configs/rf-moons.yaml", tiny(run_copy, **{"train.steps": 30}))
    with pytest.raises(RunError, match=rf"{ckpt.name}: its saved random state is damaged"):
        train(cfg, resume=True, progress=False)


def test_resume_may_lower_the_learning_rate_and_records_it(run_copy, tiny):
    cfg = load_config("configs/rf-moons.yaml", tiny(run_copy, **{"train.steps": 30, "train.lr": 2.5e-4,
                                                                 "train.grad_clip": 0.5}))
    train(cfg, resume=True, progress=False)
    (record,) = [r for r in read_metrics(run_copy) if r.get("kind") == "resume"]
    assert record["changed"]["train.lr"][1] == 2.5e-4 and record["changed"]["train.grad_clip"] == [1.0, 0.5]


def test_warmup_longer_than_the_run_is_clamped_with_a_warning():
    from flowforge.train.schedule import lr_factor

    cfg = load_config("configs/rf-moons.yaml", ["train.warmup_steps=500", "train.steps=50"])
    assert cfg.train.warmup_steps == 500  # the config keeps what was asked; the schedule clamps, training warns
    assert lr_factor(25, cfg.train) == 0.5 and lr_factor(50, cfg.train) == 1.0


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


def test_damaged_eval_json_does_not_fail_a_finished_training(run_copy, tiny):
    (run_copy / "eval.json").write_text("[1]")
    train(load_config("configs/rf-moons.yaml", tiny(run_copy, **{"train.steps": 30})), resume=True, progress=False)
    assert "`eval.json` is unreadable" in (run_copy / "report.md").read_text()
