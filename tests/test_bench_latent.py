"""benchmarks.latent_vs_pixel's equal wall-clock budgets: each row's steps follow from its measured step time."""

import argparse
import json

import pytest

from benchmarks import latent_vs_pixel


@pytest.fixture
def fake_training(monkeypatch):
    """Step times of 0.8 s (pixel) and 0.2 s (latent); training and encoding recorded, not run."""
    trained = {}
    monkeypatch.setattr(latent_vs_pixel, "seconds_per_step",
                        lambda overrides, steps, root: 0.8 if "model.net.patch=2" in overrides else 0.2)
    monkeypatch.setattr(latent_vs_pixel, "encode_seconds", lambda source: {"seconds": 5.0, "source": source})
    monkeypatch.setattr(latent_vs_pixel, "train_dit",
                        lambda name, overrides, steps, n, root: trained.setdefault(name, (overrides, steps)))
    return trained


def test_equal_time_rows_get_the_steps_their_minutes_allow(tmp_path, fake_training):
    args = argparse.Namespace(minutes=10.0, rows=list(latent_vs_pixel.TIMED), autoencoder="ae-dir", calibrate=40,
                              n=100, train_only=True)
    latent_vs_pixel.equal_time(args, tmp_path)
    steps = {name: s for name, (_, s) in fake_training.items()}
    assert steps == {"dit-pixel-10min": 750, "dit-latent-quarter-10min": 750, "dit-latent-half-10min": 1500,
                     "dit-latent-10min": 3000}
    assert "data.latent=ae-dir" in fake_training["dit-latent-10min"][0]
    assert "data.latent=null" in fake_training["dit-pixel-10min"][0]
    budget = json.loads((tmp_path / "dit-latent-half-10min.budget.json").read_text())
    assert budget["steps"] == 1500 and budget["step_seconds"] == 0.2 and budget["encode"]["source"] == "ae-dir"
    assert json.loads((tmp_path / "dit-pixel-10min.budget.json").read_text())["encode"] is None


def test_scoring_some_rows_keeps_the_others(tmp_path, fake_training, monkeypatch):
    """Scoring the rows asked for keeps earlier rows of the same runs unscored-again and the rows of runs not
    asked for, in the table's order."""
    earlier = {"rows": {"latent": {"fd": 1.0, "run": "a"}, "pixel": {"fd": 2.0, "run": "b"}}}
    written = {}
    monkeypatch.setattr(latent_vs_pixel, "RESULTS", tmp_path)
    (tmp_path / "latent_vs_pixel_time.json").write_text("{}")
    monkeypatch.setattr(latent_vs_pixel, "read_results", lambda name: earlier)
    monkeypatch.setattr(latent_vs_pixel, "write_results", lambda name, record: written.update(record) or tmp_path)
    monkeypatch.setattr(latent_vs_pixel, "same_run", lambda scored, run: scored is not None)
    monkeypatch.setattr(latent_vs_pixel, "score_timed", lambda row, run: {"fd": 3.0, "run": "c"})
    monkeypatch.setattr(latent_vs_pixel.table, "render_time", lambda files: "")
    monkeypatch.setattr(latent_vs_pixel, "samples_figure", lambda runs, rows, path: path)
    args = argparse.Namespace(minutes=10.0, rows=["pixel", "latent-half"], autoencoder="ae-dir", calibrate=40, n=100,
                              train_only=False)
    latent_vs_pixel.equal_time(args, tmp_path)
    assert {k: r["fd"] for k, r in written["rows"].items()} == {"pixel": 2.0, "latent-half": 3.0, "latent": 1.0}
    assert list(written["rows"]) == ["pixel", "latent-half", "latent"]
