"""The browser app's functions (flowforge.app.logic), without a browser or Gradio."""

import numpy as np
import pytest
import torch
from PIL import Image

from flowforge import load_config
from flowforge.app import logic
from flowforge.app.logic import AppError
from flowforge.jobs import export_run
from flowforge.train import train

TINY_UNET = {"data.name": "digits", "model.net.name": "unet", "model.net.channels": 8,
             "model.net.channel_mult": "[1,2]", "model.net.attention_levels": "[1]", "model.net.num_res_blocks": 1,
             "train.steps": 4, "train.batch_size": 16, "train.warmup_steps": 0, "train.ckpt_every": 4,
             "sample.steps": 3}
TINY_REALNVP = {"data.name": "digits", "model.flow.couplings": 2, "model.flow.levels": 1, "model.flow.hidden": 8,
                "model.flow.blocks": 1, "train.steps": 6, "train.batch_size": 16, "train.warmup_steps": 0,
                "train.ckpt_every": 6, "train.eval_every": 0}


def tiny_runs(root):
    """A 2-D rectified flow, a digits U-Net flow-matching model and a digits RealNVP, a few steps each."""
    from conftest import tiny_overrides

    train(load_config("configs/rf-moons.yaml", tiny_overrides(root / "points", **{"sample.steps": 4})),
          progress=False)
    over = [o for o in tiny_overrides(root / "unet", **TINY_UNET) if not o.startswith(("model.net.width",
                                                                                         "model.net.depth"))]
    train(load_config("configs/fm-digits.yaml", over), progress=False)
    over = [o for o in tiny_overrides(root / "nvp", **TINY_REALNVP) if not o.startswith(("model.net.", "data.n_"))]
    train(load_config("configs/realnvp-digits.yaml", over), progress=False)
    return [root / "points", root / "unet", root / "nvp"]


@pytest.fixture(scope="module")
def entries(tmp_path_factory):
    return logic.open_entries(tiny_runs(tmp_path_factory.mktemp("app")), device="cpu")  # the same noise anywhere


def pick(entries, family, kind):
    return next(e for e in entries.values() if e.family == family and e.kind == kind)


def test_entries_from_runs_and_model_folders(entries, tmp_path):
    assert list(entries) == ["rf-moons (continuous)", "fm-digits (continuous)", "realnvp-digits (realnvp)"]
    folder = export_run(pick(entries, "continuous", "points").run.dir, tmp_path / "folder")
    both = logic.open_entries([pick(entries, "continuous", "points").run.dir, folder])
    assert list(both) == ["rf-moons (continuous)", "rf-moons (continuous, 2)"]  # names stay apart
    a, b = (logic.sample(e, n=50, seed=3).samples for e in both.values())
    assert np.array_equal(a, b)


def test_sample_points_and_images(entries, tmp_path):
    points, unet, nvp = (pick(entries, "continuous", "points"), pick(entries, "continuous", "image"),
                         pick(entries, "realnvp", "image"))
    r = logic.sample(points, n=300, seed=1, sampler="euler", steps=3)
    assert r.samples.shape == (300, 2) and r.nfe == 3 and r.how == "euler, 3 steps" and r.picture.mode == "RGB"
    assert np.array_equal(r.samples, logic.sample(points, n=300, seed=1, sampler="euler", steps=3).samples)
    assert not np.array_equal(r.samples, logic.sample(points, n=300, seed=2, sampler="euler", steps=3).samples)
    r = logic.sample(unet, n=9, seed=0)  # the run's sampler: heun, 3 steps on the linear path
    # heun's 3 steps: 2 NFE each, but the last one to t = 0 is an Euler step (sample.last_step's default): 5 NFE
    assert r.samples.shape == (9, 1, 8, 8) and r.how == "heun, 3 steps" and r.nfe == 5
    assert r.picture.size[0] >= 8 * 3
    r = logic.sample(nvp, n=4, sampler="heun", steps=7)  # a flow ignores the sampler controls
    assert r.how == "exact inverse" and r.nfe == 1
    for bad, match in (({"n": 0}, "number of samples"), ({"n": 10**6}, "from 1 to 256"), ({"n": 2.5}, "whole"),
                       ({"n": 4, "steps": 0}, "steps"), ({"n": 4, "label": 3}, "not class-conditional")):
        with pytest.raises(AppError, match=match):
            logic.sample(unet, **bad)
    path = logic.save_arrays({"a": r}, tmp_path / "one")
    assert np.load(path).shape == (4, 1, 8, 8) and path.name == "samples.npy"
    path = logic.save_arrays({"a": r, "b": r}, tmp_path / "two")
    assert path.name == "samples.npz" and sorted(np.load(path).files) == ["a", "b"]


def test_uploads_are_checked(entries, tmp_path):
    unet = pick(entries, "continuous", "image")
    good = tmp_path / "digit.png"
    Image.fromarray(np.tile(np.linspace(0, 255, 8).round().astype(np.uint8), (8, 1))).save(good)
    x = logic.read_upload(unet, good)
    assert x.shape == (1, 8, 8) and x.min() == -1 and x.max() == 1
    levels = (x + 1) / 2 * 16
    assert torch.equal(levels, levels.round())  # snapped to the data's 17 levels
    Image.new("L", (28, 28)).save(tmp_path / "big.png")
    with pytest.raises(AppError, match="28x28 pixels, but .* models 8x8 grayscale images; resize"):
        logic.read_upload(unet, tmp_path / "big.png")
    (tmp_path / "fake.png").write_text("not an image at all")
    with pytest.raises(AppError, match="fake.png: not an image file"):
        logic.read_upload(unet, tmp_path / "fake.png")
    (tmp_path / "huge.png").write_bytes(b"\0" * (logic.MAX_UPLOAD_BYTES + 1))
    with pytest.raises(AppError, match="huge.png: 2.0 MB is too large"):
        logic.read_upload(unet, tmp_path / "huge.png")
    with pytest.raises(AppError, match="models points, not images"):
        logic.read_upload(pick(entries, "continuous", "points"), good)


def test_painted_strokes_become_the_missing_region(entries):
    unet = pick(entries, "continuous", "image")
    canvas = np.zeros((192, 192, 4), dtype=np.uint8)
    canvas[:, :96, 3] = 255  # the left half painted
    canvas[:6, 100:, 3] = 255  # a thin stroke: a quarter of the first row of model pixels (24 canvas rows)
    region = logic.painted_region({"background": None, "layers": [canvas]}, unet.shape)
    assert region[:, :4].all() and not region[:, 4:].any()
    assert not logic.painted_region(None, unet.shape).any()
    both = logic.missing_region(unet, "top", region)
    assert both[:4].all() and both[:, :4].all() and not both[4:, 4:].any()


@pytest.mark.parametrize("family", ["continuous", "realnvp"])
def test_inpaint_keeps_the_known_part(entries, family):
    entry = pick(entries, family, "image")
    x = logic.test_image(entry, 5)
    missing = logic.missing_region(entry, "right", torch.zeros(8, 8, dtype=torch.bool))
    options = {"method": "repaint", "resample": 2} if family == "continuous" else {"steps": 20}
    r = logic.inpaint(entry, x, missing, **options)
    original, filled = np.asarray(r.original), np.asarray(r.filled)
    scale = original.shape[0] // 8
    assert np.array_equal(original[:, :4 * scale], filled[:, :4 * scale])  # the known left half, untouched
    assert ("RePaint x2" in r.how) if family == "continuous" else ("20 steps" in r.how)
    if family == "realnvp":  # a flow climbs from the training set's mean image, the start NICE's masks favour
        assert "from the training set's mean image" in r.how
        one = np.asarray(logic.inpaint(entry, x, missing, steps=1).filled).astype(float)
        mean = np.asarray(logic.to_pil(logic.to_pixels(entry, entry.dataset().train.mean(0)))).astype(float)
        away = np.abs(one[:, 4 * scale:] - mean[:, 4 * scale:]).mean()
        assert away < 0.05 * 255, away  # one step from the mean image stays near it (from uniform noise: 106)
    with pytest.raises(AppError, match="nothing is missing"):
        logic.inpaint(entry, x, torch.zeros(8, 8, dtype=torch.bool))
    with pytest.raises(AppError, match="everything is missing"):
        logic.inpaint(entry, x, torch.ones(8, 8, dtype=torch.bool))


def test_a_flow_without_its_data_set_inpaints_from_noise(entries, monkeypatch):
    """A flow whose training data is not at hand (a model folder opened alone) still inpaints, from uniform noise,
    and says so; a continuous model has no start."""
    entry = pick(entries, "realnvp", "image")

    def unavailable():
        raise AppError(f"{entry.name}: its data set is not available here")

    x = logic.test_image(entry, 5)
    monkeypatch.setattr(entry, "dataset", unavailable)
    assert logic.flow_start(entry) is None
    r = logic.inpaint(entry, x, logic.missing_region(entry, "right", torch.zeros(8, 8, dtype=torch.bool)), steps=2)
    assert "from uniform noise" in r.how
    assert logic.flow_start(pick(entries, "continuous", "image")) is None


def test_density_places_inputs_in_the_held_out_distribution(entries):
    points = pick(entries, "continuous", "points")
    x = logic.read_points(points, "0.5, 0.25\n# a comment\n40 40\n")
    r = logic.density(points, x, n_reference=100)
    assert r.log_p.shape == (2,) and r.log_p[1] < r.log_p[0] and r.percentile[1] == 0.0
    assert "**outlier**" in r.table.splitlines()[3] and r.figure.mode == "RGB"
    nvp = pick(entries, "realnvp", "image")
    test = logic.test_image(nvp, 0)
    r = logic.density(nvp, test[None], n_reference=50)
    ref = logic.reference_scores(nvp, 50)
    assert len(ref["log_p"]) == 50 and 0 <= r.percentile[0] <= 100
    assert np.allclose(r.bits_per_dim, nvp.run.model.log_prob_to_bits_per_dim(torch.tensor(r.log_p)).numpy())
    with pytest.raises(AppError, match="rows of 2 numbers"):
        logic.read_points(points, "1 2 3")
    with pytest.raises(AppError, match="numbers only"):
        logic.read_points(points, "a b\nc d")
    with pytest.raises(AppError, match="models images"):
        logic.read_points(nvp, "1 2")
    with pytest.raises(AppError, match="expected a batch of shape"):
        logic.density(nvp, torch.zeros(1, 1, 4, 4))


def test_failures_become_messages_without_tracebacks(capsys):
    def refuses():
        raise AppError("the input is wrong")

    def breaks():
        raise KeyError("boom")

    def refused_by_the_library():
        raise ValueError("inpainting steps along a fixed grid; choose a fixed-step sampler, not dopri5")

    assert logic.guarded(refuses, 2)() == (None, None, "**Error:** the input is wrong")
    assert logic.guarded(refused_by_the_library, 1)()[1].startswith("**Error:** inpainting steps along")
    out = logic.guarded(breaks, 1)()
    assert out[0] is None and out[1].startswith("**Error:** the app failed (KeyError") and "Traceback" not in out[1]
    assert "Traceback" in capsys.readouterr().err  # the server's log has it



def test_app_command_line(tmp_path, monkeypatch, capsys):
    import importlib.util

    from flowforge.cli.main import build_parser, main

    args = build_parser().parse_args(["app", "runs/a", "runs/b"])
    assert args.run_dirs == ["runs/a", "runs/b"] and args.host == "127.0.0.1" and args.port == 7860
    if importlib.util.find_spec("gradio") is not None:
        assert main(["app", str(tmp_path / "nowhere")]) == 2
        assert "no such model folder" in capsys.readouterr().err
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gradio" else real(name, *a))
    assert main(["app", str(tmp_path)]) == 2
    assert "needs Gradio: pip install 'flowforge[app]'" in capsys.readouterr().err


def test_a_text_model_samples_from_a_prompt(tmp_path, tiny, entries):
    from test_text import text_overrides

    train(load_config("configs/fm-digits.yaml", text_overrides(tiny, tmp_path / "run", **{
        "train.steps": 4, "train.ckpt_every": 4})), progress=False)
    text = next(iter(logic.open_entries([tmp_path / "run"]).values()))
    a = logic.sample(text, n=4, seed=1, prompt="a photo of a seven", guidance=2.0)
    assert "prompt 'a photo of a seven'" in a.how
    b = text.run.model.sample(4, **dict(text.run.sample_options(4, torch.Generator().manual_seed(1)), guidance=2.0,
                                        labels=None, prompts="a photo of a seven"))
    assert np.array_equal(a.samples, b.numpy())
    with pytest.raises(AppError, match="has no text input"):
        logic.sample(pick(entries, "continuous", "image"), n=4, prompt="a seven")


def test_first_contact_edges(entries, tmp_path, monkeypatch):
    # issue 29, item 1: what a new user met on the first app run
    points = pick(entries, "continuous", "points")
    r = logic.sample(points, n=50, seed=0, sampler="dopri5")  # adaptive: the NFE it used, not the run's steps
    assert r.how == f"dopri5, adaptive: {r.nfe} NFE" and r.nfe > 4
    with pytest.raises(AppError, match=r"number of samples: expected a whole number .* got 2.5"):
        logic.sample(points, n=2.5)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    with pytest.raises(logic.UserError, match=r"runs/nope: no such run folder"):
        logic.open_entries(["runs/nope"])  # a typo of a local path, not a Hub id to download


def test_the_page_neither_rounds_numbers_nor_offers_test_images_of_points(entries):
    pytest.importorskip("gradio")
    import gradio as gr

    from flowforge.app import ui

    assert ui.density_sources(pick(entries, "continuous", "points")) == ["typed points", "upload"]
    assert "test image" in ui.density_sources(pick(entries, "continuous", "image"))
    page = ui.build(entries)
    numbers = [b for b in page.blocks.values() if isinstance(b, gr.Number)]
    assert numbers and all(b.precision is None for b in numbers)  # 2.5 reaches the check, which refuses it


def test_a_busy_port_says_port(entries, tmp_path):
    pytest.importorskip("gradio")
    import socket

    from flowforge.app.ui import launch

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(AppError, match=rf"port {port} on 127.0.0.1 is busy .* --port"):
            launch([pick(entries, "continuous", "points").run.dir], port=port, block=False)


def test_the_address_is_printed_once_the_server_answers(entries, monkeypatch, capsys):
    pytest.importorskip("gradio")
    import socket
    import urllib.request

    import gradio as gr

    from flowforge.app.ui import launch

    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    monkeypatch.setattr(gr.Blocks, "block_thread", lambda self: None)  # return instead of serving until Ctrl-C
    page = launch([pick(entries, "continuous", "points").run.dir], port=port, block=True)
    try:
        assert f"serving 1 model(s) on http://127.0.0.1:{port}/" in capsys.readouterr().out
        assert urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10).status == 200  # it answers already
    finally:
        page.close()


def test_the_app_loads_onto_the_device_asked_and_refuses_one_it_lacks(entries, tmp_path):
    """``flowforge app --device``: the entries' weights are where the device says, the page's results come back to
    the CPU, and a GPU asked for on a machine without one is refused with the fix, before anything is served."""
    import torch

    from flowforge.errors import UserError

    run_dirs = [e.run.dir for e in entries.values()]
    on_cpu = logic.open_entries(run_dirs, device="cpu")
    assert all(e.device == torch.device("cpu") for e in on_cpu.values())
    a, b = (logic.sample(pick(es, "continuous", "points"), n=20, seed=5).samples for es in (entries, on_cpu))
    assert np.array_equal(a, b)  # both on the CPU: the same noise, the same samples
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="--device cuda: PyTorch sees no CUDA GPU.*--device cpu"):
            logic.open_entries(run_dirs, device="cuda")
