"""SD3's validation loss (flowforge.train.validation): the objective at fixed times on fixed held-out examples
and noise. It is the training objective itself at those times, the same number for the same weights, the same
curve after a resume, invisible to the training trajectory, and refused with the fix where it cannot apply."""

import pytest
import torch
from safetensors.torch import load_file

from flowforge import UserError, load_config
from flowforge.data import Dataset, load_dataset
from flowforge.models import ContinuousFlow
from flowforge.models.objectives import MeanFlow, Regression, TimeSampler
from flowforge.nets import MLP
from flowforge.paths import LinearPath, VPPath
from flowforge.rng import BatchRandom
from flowforge.runs import latest_checkpoint, load_run, read_metrics
from flowforge.train import train
from flowforge.train.validation import validation_loss, validation_set

MOONS = "configs/rf-moons.yaml"


class FixedTime(TimeSampler):
    """Every example at the one time ``t`` (the training objective at a fixed time)."""

    def __init__(self, t: float):
        self.t = t

    def sample(self, rng, path, like):
        return torch.full((rng.size,), self.t, dtype=like.dtype, device=like.device)


def points(n_test=300, dim=2, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return Dataset("points", "points", torch.randn(50, dim, generator=gen), torch.randn(n_test, dim, generator=gen))


def val_records(run_dir):
    return [r for r in read_metrics(run_dir) if r.get("kind") == "val_loss"]


@pytest.mark.parametrize("path,target,weighting,loss", [
    (LinearPath(), "velocity", "none", "l2"),
    (VPPath(), "eps", "min-snr", "l2"),
    (LinearPath(), "x0", "edm", "pseudo-huber"),
])
def test_each_time_is_the_training_objective_at_that_time(path, target, weighting, loss):
    torch.manual_seed(0)
    model = ContinuousFlow(path, MLP((2,), width=16, depth=2, time_embed_dim=8), (2,), target=target,
                           objective=Regression(weighting=weighting, loss=loss))
    cfg = load_config(MOONS, ["train.val_every=5", "train.val_examples=300", "train.val_times=[0.2,0.5,0.9]"])
    vset = validation_set(cfg, model, points(), torch.device("cpu"))
    got = validation_loss(model, vset)
    for u in (0.2, 0.5, 0.9):
        t = path.train_t_min + u * (path.t_max - path.train_t_min)
        objective = Regression(FixedTime(t), weighting=weighting, loss=loss)
        rng = BatchRandom(torch.Generator().manual_seed(cfg.eval.seed), 300, 0, 300)  # the set's own draws
        with torch.no_grad():
            want = float(objective(model, points().test, rng))
        assert got["by_time"][f"{u:g}"] == pytest.approx(want, rel=1e-6)
    assert got["loss"] == pytest.approx(sum(got["by_time"].values()) / 3, rel=1e-12)


def test_linear_path_value_written_out():
    # rectified flow: x_t = (1 - t) x0 + t eps, target eps - x0, mean squared error over dimensions and examples
    torch.manual_seed(1)
    net = MLP((2,), width=8, depth=1, time_embed_dim=8)
    model = ContinuousFlow(LinearPath(), net, (2,))
    cfg = load_config(MOONS, ["train.val_every=1", "train.val_examples=100", "train.val_times=[0.25]"])
    data = points()
    got = validation_loss(model, validation_set(cfg, model, data, torch.device("cpu")))["loss"]
    x0 = data.test[:100]
    eps = torch.randn((100, 2), generator=torch.Generator().manual_seed(cfg.eval.seed))
    with torch.no_grad():
        pred = net((0.75 * x0 + 0.25 * eps), torch.full((100,), 0.25))
    assert got == pytest.approx(float((pred - (eps - x0)).square().mean()), rel=1e-6)


def test_mean_flow_is_scored_at_r_equal_t():
    # data at one point c: the exact average velocity (z - c) / t has zero loss at r = t; a wrong one does not
    c = torch.tensor([0.5, -1.0])

    class Dirac(torch.nn.Module):
        def __init__(self, bias):
            super().__init__()
            self.bias = torch.nn.Parameter(torch.tensor(bias))

        def forward(self, x, t, interval=None):
            assert interval is not None and bool((interval == 0).all())  # r = t
            return (x - c) / t[:, None] + self.bias

    data = Dataset("dirac", "points", c.repeat(10, 1), c.repeat(64, 1))
    cfg = load_config(MOONS, ["train.val_every=1", "train.val_examples=64"])
    exact = ContinuousFlow(LinearPath(), Dirac(0.0), (2,), objective=MeanFlow())
    off = ContinuousFlow(LinearPath(), Dirac(0.1), (2,), objective=MeanFlow())
    vset = validation_set(cfg, exact, data, torch.device("cpu"))
    assert validation_loss(exact, vset)["loss"] < 1e-10
    assert validation_loss(off, vset)["loss"] == pytest.approx(0.01, rel=1e-5)


def test_same_weights_same_value_and_the_logged_value_is_the_checkpoints(tmp_path, tiny):
    cfg = load_config(MOONS, tiny(tmp_path / "run", **{"train.val_every": 10}))
    train(cfg, progress=False)
    run = load_run(tmp_path / "run")  # the EMA weights of the last checkpoint (step 20)
    vset = validation_set(cfg, run.model, load_dataset(cfg.data), torch.device("cpu"))
    first, second = validation_loss(run.model, vset), validation_loss(run.model, vset)
    assert first == second  # bit for bit
    logged = val_records(tmp_path / "run")
    assert [r["step"] for r in logged] == [10, 20]
    assert logged[-1]["loss"] == first["loss"] and logged[-1]["by_time"] == first["by_time"]
    assert logged[0]["loss"] != logged[1]["loss"]  # it follows the weights


def test_resume_logs_the_curve_of_an_uninterrupted_run(tmp_path, tiny):
    # a constant schedule: a cosine one follows train.steps, which the resume lengthens
    opts = {"train.val_every": 5, "train.val_times": "[0.3,0.7]", "train.schedule": "constant"}
    train(load_config(MOONS, tiny(tmp_path / "full", **opts)), progress=False)
    train(load_config(MOONS, tiny(tmp_path / "split", **{**opts, "train.steps": 10})), progress=False)
    train(load_config(MOONS, tiny(tmp_path / "split", **{**opts, "train.steps": 20})), resume=True, progress=False)
    full, split = val_records(tmp_path / "full"), val_records(tmp_path / "split")
    assert [r["step"] for r in full] == [5, 10, 15, 20]
    assert split == full


def test_it_does_not_change_the_training_trajectory(tmp_path, tiny):
    train(load_config(MOONS, tiny(tmp_path / "plain")), progress=False)
    train(load_config(MOONS, tiny(tmp_path / "val", **{"train.val_every": 3})), progress=False)
    assert len(val_records(tmp_path / "val")) == 6 and not val_records(tmp_path / "plain")
    for name in ("model", "ema", "optimizer"):
        a = load_file(latest_checkpoint(tmp_path / "plain") / f"{name}.safetensors")
        b = load_file(latest_checkpoint(tmp_path / "val") / f"{name}.safetensors")
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    losses = [[r["loss"] for r in read_metrics(tmp_path / d) if r.get("kind", "train") == "train"]
              for d in ("plain", "val")]
    assert losses[0] == losses[1]


def test_report_and_tensorboard_show_it(tmp_path, tiny):
    train(load_config(MOONS, tiny(tmp_path / "run", **{"train.val_every": 10, "train.tensorboard": True})),
          progress=False)
    report = (tmp_path / "run" / "report.md").read_text()
    last = val_records(tmp_path / "run")[-1]
    assert f"**{last['loss']:.5f}** at step 20" in report
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "run" / "tb")).Reload()
    assert "val_loss/loss" in events.Tags()["scalars"] and "val_loss/by_time/0.0625" in events.Tags()["scalars"]
    assert [e.value for e in events.Scalars("val_loss/loss")] == pytest.approx([r["loss"] for r in
                                                                              val_records(tmp_path / "run")])


@pytest.mark.parametrize("override,match", [
    ({"train.val_times": "[0.0,0.5]"}, "train.val_times"),
    ({"train.val_times": "[0.5,1.0]"}, "train.val_times"),
    ({"train.val_times": "[]"}, "train.val_times"),
    ({"train.val_times": "[0.5,0.5]"}, "train.val_times"),
    ({"train.val_examples": 501}, r"train.val_examples: got 501, but .* holds 500 .* train.val_examples=500"),
    ({"model.kind": "nice"}, "train.eval_every"),
])
def test_bad_settings_are_refused_with_the_fix(tmp_path, tiny, override, match):
    cfg = load_config(MOONS, tiny(tmp_path / "run", **{"train.val_every": 5, **override}))
    with pytest.raises(UserError, match=match):
        train(cfg, progress=False)
    if "train.val_examples" not in override:  # refused before the run directory is touched
        assert not (tmp_path / "run" / "config.yaml").exists()
