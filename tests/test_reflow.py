"""Reflow and distillation: the pairs (exact, resumable, checksummed), the engine on them, straighter paths."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

from flowforge.config import load_config
from flowforge.errors import RunError
from flowforge.metrics import energy_distance
from flowforge.jobs import reflow_config
from flowforge.jobs.evaluate import path_straightness
from flowforge.runs import load_run
from flowforge.runs.pairs import PairSettings, load_pairs, make_pairs, pairs_dir, weights_sha256
from flowforge.train import train


@pytest.fixture(scope="module")
def parent(tmp_path_factory):
    """A tiny trained rectified flow on moons (seconds)."""
    from conftest import tiny_overrides

    run_dir = tmp_path_factory.mktemp("parent") / "run"
    train(load_config("configs/rf-moons.yaml", tiny_overrides(run_dir)), progress=False)
    return run_dir


def test_pairs_are_the_parents_samples_and_survive_damage(parent):
    run = load_run(parent)
    settings = PairSettings(pairs=250, shard_size=100, sampler="euler", steps=8, seed=3)
    directory = make_pairs(run, settings)
    sha = weights_sha256(run)
    assert directory == pairs_dir(run, settings) and directory.parent == parent / "pairs"
    pairs = load_pairs(directory, settings, sha)
    assert pairs.x.shape == pairs.noise.shape == (250, 2) and pairs.labels is None
    # each shard's end points are exactly the parent's samples of its noise, and its noise is the prior draw
    # that sampling with the shard's generator makes
    for lo, hi in ((0, 100), (100, 200), (200, 250)):
        again = run.model.sample(hi - lo, noise=pairs.noise[lo:hi], sampler="euler", steps=8, dequantized=True)
        assert torch.equal(again, pairs.x[lo:hi])
    from flowforge.runs.pairs import _shard_seed

    drawn = run.model.sample(100, sampler="euler", steps=8, dequantized=True,
                             generator=torch.Generator().manual_seed(_shard_seed(3, 1)))
    assert torch.equal(drawn, pairs.x[100:200])
    # damage: shard 1 deleted, shard 2 corrupted in place -> loading refuses, drawing again repairs exactly
    (directory / "shard-00001.safetensors").unlink()
    shard2 = directory / "shard-00002.safetensors"
    raw = bytearray(shard2.read_bytes())
    raw[-5] ^= 0xFF
    shard2.write_bytes(bytes(raw))
    with pytest.raises(RunError, match="missing or does not match its checksum"):
        load_pairs(directory, settings, sha)
    with pytest.warns(UserWarning, match="does not match its checksum"):
        make_pairs(run, settings)
    repaired = load_pairs(directory, settings, sha)
    assert torch.equal(repaired.x, pairs.x) and torch.equal(repaired.noise, pairs.noise)
    # other settings are other pairs, in another directory; pairs of other weights are refused
    other = PairSettings(pairs=250, shard_size=100, sampler="euler", steps=8, seed=4)
    assert pairs_dir(run, other) != directory
    with pytest.raises(RunError, match="other weights"):
        load_pairs(directory, settings, "0" * 64)


def test_a_killed_drawing_resumes_at_the_next_missing_shard(parent, monkeypatch):
    import flowforge.runs.pairs as pairs_module

    run = load_run(parent)
    settings = PairSettings(pairs=300, shard_size=100, sampler="euler", steps=4, seed=9)
    real, drawn = pairs_module.draw_shard, []

    def dies_at_shard_2(run_, settings_, index, n):
        if index == 2 and not drawn.count("died"):
            drawn.append("died")
            raise KeyboardInterrupt  # the process is killed while drawing shard 2
        drawn.append(index)
        return real(run_, settings_, index, n)

    monkeypatch.setattr(pairs_module, "draw_shard", dies_at_shard_2)
    with pytest.raises(KeyboardInterrupt):
        make_pairs(run, settings)
    assert drawn == [0, 1, "died"]
    make_pairs(run, settings)  # resumed: only shard 2 is drawn
    assert drawn == [0, 1, "died", 2]
    assert len(load_pairs(pairs_dir(run, settings), settings, weights_sha256(run)).x) == 300


def test_more_pairs_later_draws_only_the_new_shards(parent, monkeypatch):
    import flowforge.runs.pairs as pairs_module

    run = load_run(parent)
    sha = weights_sha256(run)
    real, drawn = pairs_module.draw_shard, []
    monkeypatch.setattr(pairs_module, "draw_shard",
                        lambda r, s, index, n: drawn.append((index, n)) or real(r, s, index, n))
    small = PairSettings(pairs=250, shard_size=100, sampler="euler", steps=4, seed=11)
    first = load_pairs(make_pairs(run, small), small, sha)
    big = PairSettings(pairs=420, shard_size=100, sampler="euler", steps=4, seed=11)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the resized last shard is drawn again without a checksum warning
        directory = make_pairs(run, big)
    assert directory == pairs_dir(run, small) and drawn == [(0, 100), (1, 100), (2, 50), (2, 100), (3, 100), (4, 20)]
    more = load_pairs(directory, big, sha)
    assert torch.equal(more.x[:200], first.x[:200]) and torch.equal(more.noise[:200], first.noise[:200])
    fewer = PairSettings(pairs=300, shard_size=100, sampler="euler", steps=4, seed=11)
    make_pairs(run, fewer)  # three full shards already there: nothing drawn
    assert len(drawn) == 6 and torch.equal(load_pairs(directory, fewer, sha).x, more.x[:300])
    with pytest.raises(RunError, match="missing or does not match"):  # a shard of another size is never cut down
        load_pairs(directory, small, sha)


def test_reflow_config_and_cli(parent, tmp_path, tiny):
    config = reflow_config(parent, pairs=200, distill=1, loss="pseudo-huber",
                           overrides=[f"run.dir={tmp_path / 'child'}", "train.steps=10"])
    assert config.reflow.parent == str(parent) and config.run.name.endswith("-distill1")
    assert (config.model.time_sampler, config.model.grid_steps, config.model.loss) == ("grid", 1, "pseudo-huber")
    assert (config.sample.sampler, config.sample.steps) == ("euler", 1)
    env_cli = [sys.executable, "-m", "flowforge"]
    proc = subprocess.run([*env_cli, "reflow", str(parent), "--pairs", "200", "--name", "rf2",
                           f"run.dir={tmp_path / 'rf2'}", "train.steps=10", "train.batch_size=50",
                           "reflow.sampler=euler", "reflow.steps=4"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    child = load_run(tmp_path / "rf2")
    assert child.config.reflow.parent == str(parent) and child.config.run.name == "rf2"
    assert f"200 (noise, sample) pairs of `{parent}`" in (tmp_path / "rf2" / "report.md").read_text()


def test_reflow_of_a_missing_run_is_one_line(tmp_path, capsys):
    from flowforge.cli.main import main

    assert main(["reflow", str(tmp_path / "nowhere"), "--pairs", "100"]) == 2
    err = capsys.readouterr().err
    assert "not a flowforge run" in err and "Traceback" not in err


def test_reflow_starts_from_the_parents_weights(parent, tmp_path):
    config = reflow_config(parent, pairs=200, overrides=[f"run.dir={tmp_path / 'child'}", "train.steps=1",
                                                         "train.lr=1e-12", "train.batch_size=50",
                                                         "reflow.sampler=euler", "reflow.steps=4"])
    train(config, progress=False)
    before, after = load_run(parent).model.state_dict(), load_run(tmp_path / "child", ema=False).model.state_dict()
    assert all(torch.allclose(before[k], after[k], atol=1e-6) for k in before)


def two_modes(n: int, seed: int) -> np.ndarray:
    gen = np.random.default_rng(seed)
    side = gen.integers(0, 2, n) * 2 - 1
    return np.stack([2.0 * side, np.zeros(n)], 1) + 0.15 * gen.standard_normal((n, 2))


def test_reflow_straightens_a_curved_flow(tmp_path, tiny):
    """Gaussian -> two separated modes: the 1-rectified flow's paths bend (mass near the middle has to split),
    the 2-rectified flow trained on its pairs is straighter and better in one Euler step; distilling the 2-RF at
    t = 1 improves the one-step samples again."""
    np.save(tmp_path / "modes.npy", two_modes(6000, 0).astype(np.float32))
    net = {"model.net.width": 64, "model.net.depth": 3, "model.net.time_embed_dim": 16}
    common = {"data.name": "array", "data.path": str(tmp_path / "modes.npy"), "train.batch_size": 256,
              "train.lr": 2e-3, "train.warmup_steps": 20, "train.ckpt_every": 10_000, "train.ema_decay": "null",
              "sample.sampler": "euler", **net}
    one = tmp_path / "rf1"
    train(load_config("configs/rf-moons.yaml", tiny(one, **common, **{"train.steps": 800})), progress=False)
    two = reflow_config(one, pairs=4000, overrides=[f"run.dir={tmp_path / 'rf2'}", "train.steps=500",
                                                    "train.lr=1e-3", "reflow.shard_size=2000"])
    train(two, progress=False)
    distilled = reflow_config(tmp_path / "rf2", pairs=4000, distill=1,
                              overrides=[f"run.dir={tmp_path / 'distill'}", "train.steps=300", "train.lr=5e-4",
                                         "reflow.shard_size=2000"])
    train(distilled, progress=False)
    ref = torch.from_numpy(two_modes(3000, 1)).float()

    def one_step(run_dir) -> float:
        model = load_run(run_dir).model
        x = model.sample(3000, sampler="euler", steps=1, generator=torch.Generator().manual_seed(7))
        return float(energy_distance(x, ref))

    s1, s2 = (path_straightness(load_run(d).model, 1000, 16, seed=1)["value"] for d in (one, tmp_path / "rf2"))
    q1, q2, q3 = one_step(one), one_step(tmp_path / "rf2"), one_step(tmp_path / "distill")
    assert s2 < 0.5 * s1, (s1, s2)
    assert q2 < 0.7 * q1 and q3 < q2, (q1, q2, q3)
