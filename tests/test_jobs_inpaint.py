"""The one place that says which options a family takes: the model's ``sample_settings`` / ``inpaint_settings``
(flowforge.protocol). ``flowforge inpaint`` (flowforge.jobs.inpaint) and the app's Inpaint tab both ask it, so
an option the model does not take is refused by both, with the same message."""

from pathlib import Path

import pytest
import torch

import flowforge.runs
from flowforge.app import logic
from flowforge.app.logic import AppError
from flowforge import load_config
from flowforge.errors import UserError
from flowforge.flows import NormalizingFlow
from flowforge.jobs import inpaint_run, sample_run
from flowforge.models import ContinuousFlow
from flowforge.train import train
from test_app import tiny_runs


@pytest.fixture(scope="module")
def entries(tmp_path_factory):
    return logic.open_entries(tiny_runs(tmp_path_factory.mktemp("jobs"))[1:])  # the digits U-Net and RealNVP


def refusals(entry, tmp_path, job_options, app_options):
    """The messages with which the inpaint job and the app refuse the same choice for ``entry``'s run."""
    with pytest.raises(UserError) as job:
        inpaint_run(entry.run.dir, "left", n=2, out=tmp_path / "filled.png", **job_options)
    x = logic.test_image(entry, 0)
    missing = logic.missing_region(entry, "left", torch.zeros(8, 8, dtype=torch.bool))
    with pytest.raises(AppError) as app:
        logic.inpaint(entry, x, missing, **app_options)
    return str(job.value), str(app.value)


def test_the_families_declare_their_options():
    assert NormalizingFlow.sample_settings == ()
    assert NormalizingFlow.inpaint_settings == ("steps", "lr", "line_search", "noise", "temperature", "start")
    assert {"sampler", "steps", "grid", "guidance"} <= set(ContinuousFlow.sample_settings)
    assert ContinuousFlow.inpaint_settings == ("sampler", "steps", "resample")
    takes = "steps, lr, line_search, noise, temperature, start"
    with pytest.raises(UserError, match=f"^NormalizingFlow inpaints with {takes}; resample does not apply to it$"):
        NormalizingFlow.check_settings(NormalizingFlow.__new__(NormalizingFlow), "inpaint", {"resample": 2})


def test_a_flow_refuses_path_options_alike_in_the_job_and_the_app(entries, tmp_path):
    nvp = next(e for e in entries.values() if e.family == "realnvp")
    expected = "NormalizingFlow inpaints with steps, lr, line_search, noise, temperature, start; resample does not apply to it"
    assert refusals(nvp, tmp_path, {"resample": 2}, {"method": "repaint", "resample": 2}) == (expected, expected)
    expected = "NormalizingFlow inpaints with steps, lr, line_search, noise, temperature, start; sampler does not apply to it"
    assert refusals(nvp, tmp_path, {"sampler": "euler"}, {"sampler": "euler"}) == (expected, expected)


def test_the_model_declaration_alone_decides(entries, tmp_path, monkeypatch):
    unet = next(e for e in entries.values() if e.family == "continuous")
    x = logic.test_image(unet, 0)
    missing = logic.missing_region(unet, "left", torch.zeros(8, 8, dtype=torch.bool))
    assert "RePaint x2" in logic.inpaint(unet, x, missing, method="repaint", resample=2, steps=2).how
    monkeypatch.setattr(ContinuousFlow, "inpaint_settings", ("sampler", "steps"))  # no RePaint any more
    expected = "ContinuousFlow inpaints with sampler, steps; resample does not apply to it"
    assert refusals(unet, tmp_path, {"resample": 2}, {"method": "repaint", "resample": 2}) == (expected, expected)
    logic.inpaint(unet, x, missing, method="replacement", steps=2)  # what it still takes works in the app
    assert inpaint_run(unet.run.dir, "left", n=2, out=tmp_path / "ok.png", steps=2).is_file()  # and in the job


def test_sampling_a_flow_refuses_a_sampler(entries, tmp_path):
    nvp = next(e for e in entries.values() if e.family == "realnvp")
    with pytest.raises(UserError, match="apply only to models with a sampler"):
        sample_run(nvp.run.dir, n=4, out=tmp_path / "s.npy", sampler="heun")
    assert logic.sample(nvp, n=4, sampler="heun", steps=7).how == "exact inverse"  # the app's shared controls


def test_runs_holds_only_run_directory_io():
    modules = {p.stem for p in Path(flowforge.runs.__file__).parent.glob("*.py")}
    assert modules == {"__init__", "checkpoint", "load", "lock", "metrics_log", "pairs", "pictures", "report",
                       "vocabulary"}


def test_inpaint_run_uses_the_runs_sample_settings_and_true_labels(tmp_path, tiny, monkeypatch):
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
