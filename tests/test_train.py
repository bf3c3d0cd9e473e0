"""The training engine: resume equivalence, NaN guard, checkpoints, multi-process, CLI round trip."""

import json
import math
import os
import socket
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from flowforge import load, load_config
from flowforge.errors import RunError, TrainingDiverged, UserError
from flowforge.models import ContinuousFlow
from flowforge.train import train
from flowforge.runs import checkpoint_dirs, latest_checkpoint


def free_port() -> int:
    """A free TCP port on localhost for torchrun's rendezvous."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def weights(ckpt):
    return {name: load_file(ckpt / f"{name}.safetensors") for name in ("model", "ema", "optimizer")}


def assert_same(a, b, exact=True):
    for part in a:
        assert a[part].keys() == b[part].keys()
        for key in a[part]:
            if exact:
                assert torch.equal(a[part][key], b[part][key]), (part, key)
            else:
                assert torch.allclose(a[part][key], b[part][key], rtol=1e-4, atol=1e-6), (part, key)


def test_resume_continues_exactly(tmp_path, tiny):
    # 2N steps in one go == N steps, then --resume for N more: parameter for parameter, EMA and optimizer too.
    opts = ["train.schedule=constant"]
    full = train(load_config("configs/rf-moons.yaml", tiny(tmp_path / "full", **{"train.steps": 20}) + opts),
                 progress=False)
    train(load_config("configs/rf-moons.yaml", tiny(tmp_path / "split", **{"train.steps": 10}) + opts), progress=False)
    resumed = train(load_config("configs/rf-moons.yaml", tiny(tmp_path / "split", **{"train.steps": 20}) + opts),
                    resume=True, progress=False)
    assert resumed.step == full.step == 20
    assert_same(weights(latest_checkpoint(tmp_path / "full")), weights(latest_checkpoint(tmp_path / "split")))
    # the resumed log reads like the uninterrupted one
    records = list(map(json.loads, (tmp_path / "split/metrics.jsonl").read_text().splitlines()))
    assert [r["step"] for r in records if r.get("kind", "train") == "train"] == [5, 10, 15, 20]
    # and says what changed on resume
    assert [r for r in records if r.get("kind") == "resume"] == [
        {"kind": "resume", "step": 10, "changed": {"train.steps": [10, 20]}}]


def test_resume_of_an_interrupted_cosine_run(tmp_path, tiny, monkeypatch):
    # A cosine run killed after its step-10 checkpoint resumes to the same weights as an uninterrupted run.
    cfg = load_config("configs/rf-moons.yaml", tiny(tmp_path / "a") + ["train.schedule=cosine"])
    train(cfg, progress=False)
    cfg_b = load_config("configs/rf-moons.yaml", tiny(tmp_path / "b") + ["train.schedule=cosine"])
    real_loss = ContinuousFlow.loss
    calls = {"n": 0}

    def interrupted(self, x, rng=None, labels=None):
        calls["n"] += torch.is_grad_enabled()  # training steps only, not the no-grad init pass
        if calls["n"] == 13:
            raise KeyboardInterrupt
        return real_loss(self, x, rng, labels)

    monkeypatch.setattr(ContinuousFlow, "loss", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(cfg_b, progress=False)
    monkeypatch.setattr(ContinuousFlow, "loss", real_loss)
    assert [p.name for p in checkpoint_dirs(tmp_path / "b")] == ["step-0000010"]
    train(cfg_b, resume=True, progress=False)
    assert_same(weights(latest_checkpoint(tmp_path / "a")), weights(latest_checkpoint(tmp_path / "b")))


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, tiny, monkeypatch):
    cfg = load_config("configs/rf-moons.yaml", tiny(tmp_path / "run"))
    real_loss = ContinuousFlow.loss
    calls = {"n": 0}

    def poisoned(self, x, rng=None, labels=None):
        calls["n"] += torch.is_grad_enabled()  # training steps only, not the no-grad init pass
        loss = real_loss(self, x, rng, labels)
        return loss * float("nan") if calls["n"] == 15 else loss

    monkeypatch.setattr(ContinuousFlow, "loss", poisoned)
    with pytest.raises(TrainingDiverged, match=r"step 15: the loss is not finite.*step-0000010.*intact"):
        train(cfg, progress=False)
    ckpts = checkpoint_dirs(tmp_path / "run")
    assert [p.name for p in ckpts] == ["step-0000010"]
    state = json.loads((ckpts[0] / "state.json").read_text())
    assert state["step"] == 10
    for tensor in load_file(ckpts[0] / "model.safetensors").values():
        assert torch.isfinite(tensor).all()


def test_nan_gradient_is_caught(tmp_path, tiny, monkeypatch):
    cfg = load_config("configs/rf-moons.yaml", tiny(tmp_path / "run"))
    real_loss = ContinuousFlow.loss

    def poisoned_grad(self, x, rng=None, labels=None):
        loss = real_loss(self, x, rng, labels)
        # finite loss, infinite gradient: d/dw of w * 0 * inf
        w = next(self.parameters()).sum()
        return loss + (w * torch.tensor(float("inf"))).clamp(max=0.0) * 0.0 if loss.requires_grad else loss

    monkeypatch.setattr(ContinuousFlow, "loss", poisoned_grad)
    with pytest.raises(TrainingDiverged, match="step 1: the (gradient norm|loss) is"):
        train(cfg, progress=False)
    assert latest_checkpoint(tmp_path / "run") is None


def test_existing_run_is_not_overwritten_and_resume_needs_a_checkpoint(tmp_path, tiny):
    cfg = load_config("configs/rf-moons.yaml", tiny(tmp_path / "run", **{"train.steps": 10}))
    with pytest.raises(RunError, match="no checkpoint"):
        train(cfg, resume=True, progress=False)
    train(cfg, progress=False)
    with pytest.raises(RunError, match="already holds a trained run; pass --resume"):
        train(cfg, progress=False)
    changed = load_config("configs/rf-moons.yaml", tiny(tmp_path / "run", **{"model.net.width": 64}))
    with pytest.raises(RunError, match="model.net.width was 32 and is now 64"):
        train(changed, resume=True, progress=False)


def test_keeps_last_k_checkpoints_and_no_temp_dirs(tmp_path, tiny):
    cfg = load_config("configs/rf-moons.yaml", tiny(tmp_path / "run", **{"train.ckpt_every": 4, "train.keep_last": 2}))
    train(cfg, progress=False)
    names = sorted(p.name for p in (tmp_path / "run/checkpoints").iterdir())
    assert names == ["step-0000016", "step-0000020"]


def test_bf16_autocast_trains(tmp_path, tiny):
    cfg = load_config("configs/rf-moons.yaml", tiny(tmp_path / "run", **{"train.precision": "bf16"}))
    result = train(cfg, progress=False)
    records = [json.loads(line) for line in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in records)
    assert next(result.model.parameters()).dtype == torch.float32  # master weights stay fp32


def test_cli_round_trip(tmp_path, tiny):
    run = tmp_path / "run"
    cli = [sys.executable, "-m", "flowforge.cli"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cli + ["train", "configs/rf-moons.yaml", *tiny(run, **{"train.sample_every": 10})],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert (run / "samples/step-0000010.png").is_file() and (run / "report.md").is_file()
    proc = subprocess.run(cli + ["eval", str(run)], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    ev = json.loads((run / "eval.json").read_text())
    assert {"model", "noise_floor", "matched_gaussian"} <= ev.keys()
    assert ev["noise_floor"]["energy_distance"] < ev["matched_gaussian"]["energy_distance"]
    assert "Sample quality" in (run / "report.md").read_text()
    proc = subprocess.run(cli + ["sample", str(run), "--n", "50", "--out", str(tmp_path / "s.npy"), "--steps", "4",
                                 "--sampler", "heun"], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    import numpy as np

    assert np.load(tmp_path / "s.npy").shape == (50, 2)
    proc = subprocess.run(cli + ["sample", str(run), "--n", "50", "--out", str(tmp_path / "c.npy"), "--steps", "4",
                                 "--sampler", "heun", "--compile"], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr  # the compiled network draws the same samples
    assert np.allclose(np.load(tmp_path / "c.npy"), np.load(tmp_path / "s.npy"), rtol=1e-4, atol=1e-5)
    proc = subprocess.run(cli + ["info", str(run)], capture_output=True, text=True, env=env)
    assert proc.returncode == 0 and "step 20 of 20" in proc.stdout
    proc = subprocess.run(cli + ["sample", str(tmp_path / "nowhere"), "--out", "x.npy"], capture_output=True,
                          text=True, env=env)
    assert proc.returncode == 2 and "not a flowforge run" in proc.stderr and "Traceback" not in proc.stderr
    proc = subprocess.run(cli + ["sample", str(run), "--out", str(tmp_path / "g.npy"), "--guidance", "2"],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 2 and "not class-conditional" in proc.stderr and "Traceback" not in proc.stderr
    model = load(run)
    assert model.sample(7, steps=3).shape == (7, 2)


TORCHRUN = os.path.join(os.path.dirname(sys.executable), "torchrun")
needs_torchrun = pytest.mark.skipif(not os.path.exists(TORCHRUN), reason="torchrun is not installed beside this Python")


def train_two_processes(config: str, overrides: list[str]) -> None:
    """``flowforge train config overrides`` over 2 gloo processes (torchrun, one thread each); fails with its
    stderr's tail."""
    proc = subprocess.run([TORCHRUN, "--nproc_per_node", "2", "--master_port", str(free_port()), "-m",
                           "flowforge.cli", "train", config, *overrides], capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]


def assert_two_processes_match_one(config: str, overrides, root) -> None:
    """Train ``config`` with ``overrides(run_dir)`` over 2 gloo processes and in one: the 2-process run records
    both ranks (world size, RNG states) with identical parameters, and equals the 1-process run on the same
    global batch to float tolerance (the all-reduce sums in another order), EMA and AdamW moments included."""
    train_two_processes(config, overrides(root / "two"))
    train(load_config(config, overrides(root / "one")), progress=False)
    two, one = latest_checkpoint(root / "two"), latest_checkpoint(root / "one")
    state = json.loads((two / "state.json").read_text())
    assert state["world_size"] == 2 and len(state["rng"]) == 2
    assert state["weights_sum"][0] == state["weights_sum"][1]  # both ranks hold identical parameters
    assert_same(weights(one), weights(two), exact=False)


@pytest.mark.slow
@needs_torchrun
def test_two_processes_match_one(tmp_path, tiny):
    assert_two_processes_match_one("configs/rf-moons.yaml", lambda run: tiny(run, **{"train.ckpt_every": 20}),
                                   tmp_path)


def test_cli_bad_data_names_the_row(tmp_path, tiny):
    bad = tmp_path / "points.csv"
    bad.write_text("x,y\n0.1,0.2\n0.3,nan\n0.5,0.6\n")
    proc = subprocess.run([sys.executable, "-m", "flowforge.cli", "train", "configs/rf-moons.yaml",
                           *tiny(tmp_path / "run", **{"data.name": "array", "data.path": str(bad)})],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "points.csv" in proc.stderr and "line 3" in proc.stderr, proc.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_image_data_end_to_end(tmp_path, tiny):
    # digits (1, 8, 8) through the same engine: MLP on the flattened image, an image-grid picture, eval on the test split
    cfg = load_config("configs/rf-digits.yaml", tiny(tmp_path / "run", **{
        "data.name": "digits", "train.batch_size": 50, "train.sample_every": 20, "eval.n_samples": 100}))
    train(cfg, progress=False)
    from PIL import Image

    assert Image.open(tmp_path / "run/samples/step-0000020.png").size[0] > 8
    from flowforge import evaluate

    record = evaluate(tmp_path / "run", n_likelihood=40)
    assert record["n_reference"] == 100 and record["repeats"] == 1
    assert record["likelihood"]["n"] == 40 and math.isfinite(record["likelihood"]["bits_per_dim"])
    with pytest.raises(UserError, match="n_likelihood must be >= 0"):
        evaluate(tmp_path / "run", n_likelihood=-1)
    assert load(tmp_path / "run").sample(3, steps=2).shape == (3, 1, 8, 8)


def test_resume_needs_more_steps_and_a_readable_config(tmp_path, tiny):
    cfg = load_config("configs/rf-moons.yaml", tiny(tmp_path / "run", **{"train.steps": 10}))
    train(cfg, progress=False)
    with pytest.raises(RunError, match="already trained to step 10; to continue, resume with train.steps larger"):
        train(cfg, resume=True, progress=False)
    (tmp_path / "run/config.yaml").write_text("train: [oops\n")
    bigger = load_config("configs/rf-moons.yaml", tiny(tmp_path / "run", **{"train.steps": 20}))
    with pytest.raises(RunError, match="not a valid config"):
        train(bigger, resume=True, progress=False)


def test_fresh_run_clears_outputs_of_a_run_that_died_before_its_first_checkpoint(tmp_path, tiny):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"step": 999, "loss": 1.0}\n')
    (run / "eval.json").write_text("{}")
    train(load_config("configs/rf-moons.yaml", tiny(run, **{"train.steps": 10})), progress=False)
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [5, 10] and not (run / "eval.json").exists()


def test_eval_needs_two_samples(tmp_path, tiny):
    proc = subprocess.run([sys.executable, "-m", "flowforge.cli", "eval", str(tmp_path), "--n", "1"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "--n must be >= 2" in proc.stderr


NAN_ON_RANK_1 = """
import os, sys
import torch
import flowforge.models.continuous as c
real = c.ContinuousFlow.loss
calls = {"n": 0}
def loss(self, x, rng=None, labels=None):
    calls["n"] += torch.is_grad_enabled()  # training steps only, not the no-grad init pass
    out = real(self, x, rng, labels)
    # a NaN that has no gradient path: only the loss check can see it, and only on rank 1
    if calls["n"] == 15 and os.environ.get("RANK") == "1":
        out = out + float("nan") * out.detach()
    return out
c.ContinuousFlow.loss = loss
from flowforge.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
@needs_torchrun
def test_nan_on_one_rank_stops_every_rank(tmp_path, tiny):
    script = tmp_path / "nan_rank1.py"
    script.write_text(NAN_ON_RANK_1)
    port = free_port()
    proc = subprocess.run([TORCHRUN, "--nproc_per_node", "2", "--master_port", str(port), str(script), "train",
                           "configs/rf-moons.yaml", *tiny(tmp_path / "run")], capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert proc.returncode != 0
    assert proc.stderr.count("training stopped at step 15: the loss is not finite") == 2, proc.stderr[-3000:]
    assert [p.name for p in checkpoint_dirs(tmp_path / "run")] == ["step-0000010"]


def test_compiled_network_trains_like_the_eager_one(tmp_path, tiny):
    # train.compile runs the same network through TorchInductor: the same weights within float tolerance, the
    # checkpoint's keys unchanged (a compiled run loads like any other), and resume still continues it.
    opts = {"train.steps": 10, "train.ckpt_every": 5}
    eager = train(load_config("configs/rf-moons.yaml", tiny(tmp_path / "eager", **opts)), progress=False)
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    compiled = train(load_config("configs/rf-moons.yaml", tiny(tmp_path / "compiled", **opts) + ["train.compile=true"]),
                     progress=False)
    assert compiled.step == eager.step == 10
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] >= 1  # the network did go through the compiler
    assert_same(weights(latest_checkpoint(tmp_path / "eager")), weights(latest_checkpoint(tmp_path / "compiled")),
                exact=False)
    # an eager run may go on compiled (train.compile is a resumable change), and then does go through the compiler
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    resumed = train(load_config("configs/rf-moons.yaml", tiny(tmp_path / "eager", **{**opts, "train.steps": 15})
                                + ["train.compile=true"]), resume=True, progress=False)
    assert resumed.step == 15
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] >= 1
    assert type(load(tmp_path / "compiled").net).__name__ == type(load(tmp_path / "eager").net).__name__


def test_compile_is_refused_where_it_cannot_apply():
    with pytest.raises(UserError, match="train.compile.*model.kind='nice'"):
        load_config("configs/nice-mnist.yaml", ["train.compile=true"])
    with pytest.raises(UserError, match="train.compile with data.resolutions"):
        load_config("configs/dit-mnist-multires.yaml", ["train.compile=true"])
    with pytest.raises(UserError, match="train.compile with model.objective=mean-flow.*jvp"):
        load_config("configs/meanflow-digits.yaml", ["train.compile=true"])
