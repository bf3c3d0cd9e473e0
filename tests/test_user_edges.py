"""The edges an outside test found (issue 29), each reproduced: bound files, refused inputs, cleaned leftovers."""

from __future__ import annotations

import json
import os
import stat
import warnings

import pytest
import torch

import flowforge
from flowforge import load_config
from flowforge.errors import RunError, TrainingDiverged, UserError
from flowforge.jobs import export_run, reflow_config
from flowforge.jobs.compare import run_row
from flowforge.jobs.sample import sample_run
from flowforge.models import ContinuousFlow
from flowforge.models.captions import WordTokenizer
from flowforge.runs import checkpoint_dirs, latest_checkpoint, load_run, read_state
from flowforge.runs import pairs as pairs_module
from flowforge.runs.pairs import PairSettings, make_pairs, pairs_dir, weights_sha256
from flowforge.train import train


@pytest.fixture(scope="module")
def rf(tmp_path_factory):
    """A tiny rectified flow on moons (seconds)."""
    from conftest import tiny_overrides

    run_dir = tmp_path_factory.mktemp("edges") / "rf"
    train(load_config("configs/rf-moons.yaml", tiny_overrides(run_dir)), progress=False)
    return run_dir


def test_an_exported_folder_is_bound_to_its_weights(rf, tmp_path):
    # edge 1: a shape-preserving edit of config.json (velocity -> eps) loaded silently and sampled garbage
    out = export_run(rf, tmp_path / "folder")
    assert stat.S_IMODE(os.stat(out / "model.safetensors").st_mode) == 0o644  # shared files: readable by all
    flowforge.from_pretrained(out)
    meta = json.loads((out / "config.json").read_text())
    for key, value in (("target", "eps"), ("path", "vp")):
        edited = json.loads(json.dumps(meta))
        edited["config"]["model"][key] = value
        (out / "config.json").write_text(json.dumps(edited))
        with pytest.raises(RunError, match=rf"model.{key} was '.*', .*config.json says '{value}'"):
            flowforge.from_pretrained(out)


def test_a_reflow_child_keeps_the_pairs_of_the_parent_it_began_with(tmp_path, tiny):
    # edge 2: a child resumed after its parent trained further drew new pairs from the parent's new weights
    parent = tmp_path / "parent"
    train(load_config("configs/rf-moons.yaml", tiny(parent, **{"train.steps": 10})), progress=False)
    extra = ["reflow.sampler=euler", "reflow.steps=2", "reflow.shard_size=100", "train.steps=10"]
    child = reflow_config(parent, pairs=200, overrides=tiny(tmp_path / "child") + extra)
    train(child, progress=False)
    first = {p.name for p in (parent / "pairs").iterdir()}
    train(load_config("configs/rf-moons.yaml", tiny(parent, **{"train.steps": 20})), resume=True, progress=False)
    longer = reflow_config(parent, pairs=200, overrides=tiny(tmp_path / "child") + extra[:-1] + ["train.steps=20"])
    with pytest.warns(UserWarning, match="trained further since this run began; resuming on the pairs drawn from"):
        train(longer, resume=True, progress=False)
    assert {p.name for p in (parent / "pairs").iterdir()} == first  # no pairs of the new weights
    assert read_state(latest_checkpoint(tmp_path / "child"))["reflow_parent_weights"] is not None
    # the recorded pairs gone: refused, saying why
    for shard in (parent / "pairs").glob("*/shard-*"):
        shard.unlink()
    evenlonger = reflow_config(parent, pairs=200, overrides=tiny(tmp_path / "child") + extra[:-1] + ["train.steps=30"])
    with pytest.raises(RunError, match="has trained further since this run drew its pairs .* incomplete"):
        train(evenlonger, resume=True, progress=False)


def test_pairs_that_cannot_fit_are_refused_before_drawing(rf, monkeypatch):
    # edge 3: --pairs 10000000000 started writing shards toward a full disk
    run = load_run(rf)
    with pytest.raises(RunError, match=r"reflow.pairs=10,000,000,000: the pairs take .* GiB, more than half"):
        make_pairs(run, PairSettings(pairs=10_000_000_000, sampler="euler", steps=2))
    monkeypatch.setattr(pairs_module.shutil, "disk_usage", lambda path: type("Usage", (), {"free": 1000})())
    settings = PairSettings(pairs=300, shard_size=100, sampler="euler", steps=2, seed=11)
    with pytest.raises(RunError, match=r"the shards still to draw take .* GiB, and .* free"):
        make_pairs(run, settings)
    assert not list(pairs_dir(run, settings).glob("shard-*"))


def test_a_killed_pair_draw_leaves_no_temporary_file(rf):
    # edge 9: the temporary shard of a killed draw stayed behind
    run = load_run(rf)
    settings = PairSettings(pairs=100, shard_size=100, sampler="euler", steps=2, seed=12)
    directory = pairs_dir(run, settings)
    directory.mkdir(parents=True, exist_ok=True)
    dead = directory / ".shard-00000.safetensors.tmp-999999999"  # no such process
    dead.write_bytes(b"half a shard")
    make_pairs(run, settings)
    assert not dead.exists() and (directory / "shard-00000.safetensors").is_file()


def test_a_pairs_manifest_of_the_wrong_shape_names_the_file_to_delete(rf):
    # edge 6: valid JSON of the wrong shape was a traceback
    run = load_run(rf)
    settings = PairSettings(pairs=100, shard_size=100, sampler="euler", steps=2, seed=13)
    directory = make_pairs(run, settings)
    for bad in ([1, 2], {"shards": [1]}, {"shards": {"0": {"n": "x"}}}):
        (directory / "pairs.json").write_text(json.dumps(bad))
        with pytest.raises(RunError, match=r"pairs.json is valid JSON but not a pairs manifest.*delete"):
            make_pairs(run, settings)
    assert weights_sha256(run)


def test_compare_names_a_malformed_eval_json(rf, tmp_path):
    # edge 6: a malformed eval.json given to `flowforge compare` was a traceback
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(rf, run_dir)
    for bad in ([], {"step": 1, "sampler": "euler", "n_reference": 3, "straightness": 2,
                     "model": {"energy_distance": 1}, "noise_floor": {"energy_distance": 1}},
                {"step": "ten", "sampler": "euler", "n_reference": 3, "model": {"energy_distance": 1},
                 "noise_floor": {"energy_distance": 1}},
                {"step": 1, "sampler": "euler", "n_reference": 3, "model": {"energy_distance": 1},
                 "noise_floor": {"energy_distance": 1}, "image": {"model": 3}}):
        (run_dir / "eval.json").write_text(json.dumps(bad))
        with pytest.raises(RunError, match="eval.json is not an eval record flowforge wrote"):
            run_row(run_dir)


@pytest.fixture(scope="module")
def mlp_digits(tmp_path_factory):
    """A tiny MLP on 8x8 digits: it takes one image size (its first layer has 64 inputs)."""
    from conftest import tiny_overrides

    run_dir = tmp_path_factory.mktemp("edges") / "mlp"
    over = {"data.name": "digits", "model.net.name": "mlp", "train.batch_size": 16, "train.warmup_steps": 0,
            "train.steps": 2, "sample.steps": 2}
    train(load_config("configs/fm-digits.yaml", tiny_overrides(run_dir, **over)), progress=False)
    return run_dir


def test_sample_sizes_the_network_cannot_take_are_refused(mlp_digits, tmp_path):
    # edge 7: --size 56x56 on a one-size network was a traceback, and 1024x1024 ran on unbounded
    with pytest.raises(UserError, match=r"--size 56x56: this run's network \(mlp\) does not take images of that"):
        sample_run(mlp_digits, n=2, out=tmp_path / "x.npy", size="56x56")
    with pytest.raises(UserError, match=r"--size 1024x1024: more than 8x the 8x8 .* at most 64x64"):
        sample_run(mlp_digits, n=2, out=tmp_path / "x.npy", size="1024x1024")
    assert not (tmp_path / "x.npy").exists()


def test_a_prompt_without_any_word_is_refused():
    # edge 8: '?!' has no word at all and sampled unconditionally
    tok = WordTokenizer(["bag", "shirt"])
    with pytest.raises(ValueError, match=r"prompt '\?!': none of its words is in this model's vocabulary"):
        tok.encode(["?!"])
    assert tok.encode([""]).tolist() == [[0]]  # the empty caption (the null condition) stays allowed


def test_the_nan_guard_advice_recovers_a_run_whose_weights_blew_up_first(tmp_path, tiny, monkeypatch):
    # edge 4: the last checkpoint before the NaN already held weights grown a thousandfold (here thirtyfold), so resuming it with
    # a lower lr diverged again; the guard now resumes from the last checkpoint with healthy weights
    cfg = load_config("configs/rf-moons.yaml", tiny(tmp_path / "run", **{"train.steps": 30}))
    real_loss = ContinuousFlow.loss
    calls = {"n": 0}

    def blowing_up(self, x, rng=None, labels=None):
        calls["n"] += torch.is_grad_enabled()
        if calls["n"] == 12 and torch.is_grad_enabled():  # the weights blow up, the loss stays finite
            with torch.no_grad():
                for p in self.parameters():
                    p.mul_(30.0)
        loss = real_loss(self, x, rng, labels)
        return loss * float("nan") if calls["n"] == 25 else loss

    monkeypatch.setattr(ContinuousFlow, "loss", blowing_up)
    with pytest.raises(TrainingDiverged, match=r"step-0000010, is intact. The checkpoints after it "
                                               r"\(unhealthy-step-0000020\) hold weights grown .* set aside"):
        train(cfg, progress=False)
    assert [p.name for p in checkpoint_dirs(tmp_path / "run")] == ["step-0000010"]
    assert (tmp_path / "run/checkpoints/unhealthy-step-0000020").is_dir()
    monkeypatch.setattr(ContinuousFlow, "loss", real_loss)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train(load_config("configs/rf-moons.yaml", tiny(tmp_path / "run", **{"train.steps": 30, "train.lr": 2.5e-4})),
              resume=True, progress=False)  # the advice, followed
    state = read_state(latest_checkpoint(tmp_path / "run"))
    assert state["step"] == 30 and state["health"]["healthy"]
    samples = flowforge.load(tmp_path / "run").sample(100, steps=4)
    assert torch.isfinite(samples).all()


# --------------------------------------------------------------------------- the command line (item 6)


def test_version_and_help_answer_without_importing_torch():
    import subprocess
    import sys

    for flag in ("--version", "--help"):
        code = ("import sys\nfrom flowforge.cli.main import main\ntry:\n    main([%r])\nexcept SystemExit:\n    pass\n"
                "print('torch' in sys.modules)" % flag)
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0 and proc.stdout.strip().endswith("False"), proc.stdout + proc.stderr


def test_every_verb_and_argument_is_described():
    import argparse

    from flowforge.cli.main import build_parser

    verbs = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name, parser in verbs.choices.items():
        assert parser.description, name
        for action in parser._actions:
            assert action.help, (name, action.dest)


def test_an_unknown_config_key_suggests_the_closest():
    from flowforge.config import ConfigError

    with pytest.raises(ConfigError, match=r"unknown key train\.stepz in train; did you mean train\.steps\?"):
        load_config("configs/rf-moons.yaml", ["train.stepz=10"])


def test_warnings_print_as_command_lines():
    import subprocess
    import sys

    code = ("import warnings\nfrom flowforge.cli import info\nfrom flowforge.cli.main import main\n"
            "info._info = lambda args: warnings.warn('the library warns')\nmain(['info', 'somewhere'])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stderr == "flowforge: warning: the library warns\n", proc.stderr


# --------------------------------------------------------------------------- progress (item 3)


def test_the_likelihood_and_straightness_stages_draw_bars(rf, monkeypatch):
    # `flowforge eval`'s likelihood stage (364 of the demo eval's 450 s) ran silently
    import tqdm.auto

    from flowforge.jobs.evaluate import held_out_scores

    bars = []

    class Recording:  # what network_progress draws, without a terminal (and beside Gradio's tqdm patch)
        def __init__(self, total=None, desc="", **kwargs):
            self.total, self.desc, self.n = total, desc, 0
            bars.append(self)

        def update(self, k):
            self.n += k

        def close(self):
            pass

    monkeypatch.setattr(tqdm.auto, "tqdm", Recording)
    run = load_run(rf)
    references = [run.model.sample(100, steps=2)]
    from flowforge.data import load_dataset

    dataset = load_dataset(run.config.data)
    out = held_out_scores(run, dataset, references, 100, 30, {}, lambda what: None, progress=True)
    by_name = {b.desc: b for b in bars}
    assert {"likelihood", "straightness"} <= set(by_name)
    assert by_name["likelihood"].n > 10  # one tick per network evaluation of the adaptive ODE
    assert by_name["straightness"].n == by_name["straightness"].total == 4 * run.config.eval.straightness_steps + 1
    assert out["straightness"]["nfe"] == by_name["straightness"].n


# --------------------------------------------------------------------------- TensorBoard (item 4)


def test_tensorboard_gets_sample_pictures_and_eval_scores(tmp_path, tiny):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir = tmp_path / "run"
    train(load_config("configs/rf-moons.yaml", tiny(run_dir, **{"train.tensorboard": True, "train.sample_every": 10,
                                                                "train.steps": 10})),
          progress=False)
    flowforge.evaluate(run_dir, n_samples=50, n_likelihood=5)
    tags = {"images": set(), "scalars": set()}
    for events in (run_dir / "tb").glob("events.*"):
        acc = EventAccumulator(str(events), size_guidance={"images": 0, "scalars": 0})
        acc.Reload()
        for kind in tags:
            tags[kind] |= set(acc.Tags()[kind])
    assert {"samples", "eval/samples"} <= tags["images"]
    assert {"train/loss", "eval/model/energy_distance", "eval/likelihood/bits_per_dim"} <= tags["scalars"]
