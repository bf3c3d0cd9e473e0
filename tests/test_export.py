"""Model folders: ``flowforge export`` and ``flowforge.from_pretrained`` round trip, and their errors."""

import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file, save_file

import flowforge
from flowforge import load, load_config
from flowforge.errors import RunError, UserError
from flowforge.jobs import export_run, load_pretrained, pretrained
from flowforge.runs import latest_checkpoint
from flowforge.train import train

TINY_REALNVP = {"data.name": "digits", "model.flow.couplings": 2, "model.flow.levels": 1, "model.flow.hidden": 8,
                "model.flow.blocks": 1, "train.steps": 6, "train.batch_size": 16, "train.warmup_steps": 0,
                "train.ckpt_every": 6, "train.eval_every": 0}


def flow_overrides(tiny, run_dir):
    return [o for o in tiny(run_dir, **TINY_REALNVP) if not o.startswith(("model.net.", "data.n_"))]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny rectified flow on moons (with eval.json) and a tiny RealNVP on digits, a few steps each."""
    from conftest import tiny_overrides

    root = tmp_path_factory.mktemp("export")
    rf = tiny_overrides(root / "rf", **{"sample.grid": "shifted", "sample.shift": 2.0})
    train(load_config("configs/rf-moons.yaml", rf), progress=False)
    flowforge.evaluate(root / "rf", n_samples=100, n_likelihood=20)
    train(load_config("configs/realnvp-digits.yaml", flow_overrides(tiny_overrides, root / "nvp")), progress=False)
    return root


@pytest.mark.parametrize("name, options", [("rf", {"sampler": "heun", "steps": 4}), ("nvp", {})])
def test_exported_model_samples_like_the_run(runs, tmp_path, name, options):
    out = export_run(runs / name, tmp_path / "folder")
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors", "samples.png"]
    # the EMA weights of the newest checkpoint, tensor for tensor
    ema = load_file(latest_checkpoint(runs / name) / "ema.safetensors")
    exported = load_file(out / "model.safetensors")
    assert ema.keys() == exported.keys() and all(torch.equal(ema[k], exported[k]) for k in ema)
    original, reloaded = load(runs / name), flowforge.from_pretrained(out)
    assert not reloaded.training
    a = original.sample(32, generator=torch.Generator().manual_seed(7), **options)
    b = reloaded.sample(32, generator=torch.Generator().manual_seed(7), **options)
    assert torch.equal(a, b)
    x = a[:5].clone()
    assert torch.equal(original.log_prob(x, generator=torch.Generator().manual_seed(1)),
                       reloaded.log_prob(x, generator=torch.Generator().manual_seed(1)))
    # the run's sample settings come along: the card's picture is reproducible from the folder alone
    run = load_pretrained(out)
    assert run.config.sample == load_config(runs / name / "config.yaml").sample
    assert str(tmp_path) not in (out / "config.json").read_text()  # no paths of this machine


def test_model_card_says_what_it_is_and_how_it_scores(runs, tmp_path):
    card = (export_run(runs / "rf", tmp_path / "rf") / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: flowforge\n")
    for part in ("continuous model on the `linear` path", "`moons`: points, example shape (2,), 2,000 training",
                 "20 steps of batch 64 = 1,280 examples", "noise floor (data vs data)", "matched Gaussian baseline",
                 "Held-out negative log-likelihood", "![samples](samples.png)", "flowforge.from_pretrained(",
                 "sampler='euler', steps=10, grid='shifted', grid_options={'rho': 7.0, 'shift': 2.0}, "
                 "generator=torch.Generator().manual_seed(0)"):
        assert part in card, part
    ev = json.loads((runs / "rf" / "eval.json").read_text())
    assert f"{ev['noise_floor']['energy_distance']:.5f}" in card
    # the card's code runs as printed and draws exactly the pictured samples (the run's sample settings, seed 0)
    code = card.split("```python\n")[1].split("```")[0].replace('"path/to/rf-moons"', repr(str(tmp_path / "rf")))
    scope = {}
    exec(code, scope)
    run = load_pretrained(tmp_path / "rf")
    assert torch.equal(scope["x"], run.model.sample(2000, **run.sample_options(2000, torch.Generator().manual_seed(0))))
    unscored = (export_run(runs / "nvp", tmp_path / "nvp") / "README.md").read_text()
    assert "Not scored: `flowforge eval" in unscored and "exact inverse" in unscored


def test_export_cli_and_refusals(runs, tmp_path):
    out = tmp_path / "cli"
    proc = subprocess.run([sys.executable, "-m", "flowforge", "export", str(runs / "rf"), "--out", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 0 and "from_pretrained" in proc.stdout, proc.stderr
    export_run(runs / "rf", out)  # an earlier export is replaced
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    proc = subprocess.run([sys.executable, "-m", "flowforge", "export", str(runs / "rf"), "--out",
                           str(tmp_path / "busy")], capture_output=True, text=True)
    assert proc.returncode == 2 and "holds other files (notes.txt)" in proc.stderr and "Traceback" not in proc.stderr


def test_broken_folders_name_the_file(runs, tmp_path):
    good = export_run(runs / "rf", tmp_path / "good")
    config = json.loads((good / "config.json").read_text())

    def folder(name, *, meta=None, weights=None):
        d = tmp_path / name
        d.mkdir()
        if meta is not None:
            (d / "config.json").write_text(meta if isinstance(meta, str) else json.dumps(meta))
        if weights is not None:
            save_file(weights, str(d / "model.safetensors"))
        return d

    tensors = load_file(good / "model.safetensors")
    with pytest.raises(RunError, match=r"config.json: missing"):
        flowforge.from_pretrained(folder("none", weights=tensors))
    with pytest.raises(RunError, match=r"config.json: unreadable"):
        flowforge.from_pretrained(folder("garbled", meta="{not json", weights=tensors))
    with pytest.raises(RunError, match=r"config.json: not a flowforge model config"):
        flowforge.from_pretrained(folder("foreign", meta={"model_type": "bert"}, weights=tensors))
    wider = json.loads(json.dumps(config))
    wider["config"]["model"]["net"]["width"] = 48
    with pytest.raises(RunError, match=r"weights in .*wider/model.safetensors do not fit|cannot read weights from "
                                       r".*wider/model.safetensors"):
        flowforge.from_pretrained(folder("wider", meta=wider, weights=tensors))
    bad_value = json.loads(json.dumps(config))
    bad_value["config"]["model"]["path"] = "zigzag"
    with pytest.raises(RunError, match=r"badvalue/config.json: its \"config\" is not a valid.*model.path"):
        flowforge.from_pretrained(folder("badvalue", meta=bad_value, weights=tensors))
    with pytest.raises(RunError, match=r"noweights/model.safetensors: missing"):
        flowforge.from_pretrained(folder("noweights", meta=config))
    shrunk = {k: v[..., :1].contiguous() if v.ndim else v for k, v in tensors.items()}
    with pytest.raises(RunError, match=r"shrunk/model.safetensors"):
        flowforge.from_pretrained(folder("shrunk", meta=config, weights=shrunk))
    with pytest.raises(RunError, match="no such model folder"):
        flowforge.from_pretrained(tmp_path / "absent")


def test_repo_ids_go_through_huggingface_hub(monkeypatch, tmp_path, runs):
    good = export_run(runs / "rf", tmp_path / "good")
    calls = []

    def fake_snapshot_download(repo_id, **kwargs):
        calls.append((repo_id, kwargs))
        return str(good)

    hub = pytest.importorskip("huggingface_hub")
    monkeypatch.setattr(hub, "snapshot_download", fake_snapshot_download)
    model = flowforge.from_pretrained("someone/flowforge-moons", revision="v1")
    assert calls[0][0] == "someone/flowforge-moons" and calls[0][1]["revision"] == "v1"
    assert "model.safetensors" in calls[0][1]["allow_patterns"] and model.shape == (2,)

    def offline(repo_id, **kwargs):
        raise hub.errors.LocalEntryNotFoundError("Cannot find the requested files in the disk cache")

    monkeypatch.setattr(hub, "snapshot_download", offline)
    with pytest.raises(UserError, match="no network, and no copy in the cache.*loads offline"):
        flowforge.from_pretrained("someone/flowforge-moons")


def test_repo_ids_without_huggingface_hub(monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # not installed
    with pytest.raises(UserError, match="needs huggingface_hub: pip install huggingface_hub"):
        pretrained.download("someone/flowforge-moons")


def test_a_text_model_travels_with_its_vocabulary(tmp_path, tiny):
    from test_text import text_overrides

    train(load_config("configs/fm-digits.yaml", text_overrides(tiny, tmp_path / "run", **{
        "train.steps": 4, "train.ckpt_every": 4})), progress=False)
    out = export_run(tmp_path / "run", tmp_path / "folder")
    assert (out / "vocabulary.json").read_text() == (tmp_path / "run" / "vocabulary.json").read_text()
    assert "prompts=" in (out / "README.md").read_text()
    original, reloaded = load(tmp_path / "run"), flowforge.from_pretrained(out)
    for options in ({"prompts": "a photo of a seven"}, {"labels": torch.arange(6)}):
        a = original.sample(6, steps=2, guidance=2.0, generator=torch.Generator().manual_seed(3), **options)
        b = reloaded.sample(6, steps=2, guidance=2.0, generator=torch.Generator().manual_seed(3), **options)
        assert torch.equal(a, b)
    (out / "vocabulary.json").unlink()
    with pytest.raises(RunError, match=r"folder/vocabulary.json: missing; .* describes a text model"):
        flowforge.from_pretrained(out)


def test_the_card_parses_with_huggingface_hub_and_keeps_its_body(runs, tmp_path):
    hub = pytest.importorskip("huggingface_hub")
    out = export_run(runs / "rf", tmp_path / "rf")
    card = hub.ModelCard.load(out / "README.md")
    assert card.data.library_name == "flowforge" and card.data.license == "mit"
    assert "flowforge" in card.data.tags and "flow-matching" in card.data.tags
    metrics = {r.metric_type: r.metric_value for r in card.data.eval_results}
    scored = json.loads((runs / "rf" / "eval.json").read_text())
    assert metrics["energy_distance"] == pytest.approx(scored["model"]["energy_distance"])
    assert metrics["bits_per_dim"] == pytest.approx(scored["likelihood"]["bits_per_dim"])
    assert card.data.pipeline_tag is None  # 2-D points: the Hub has no task for them
    for section in ("## Training budget", "## Scores", "## How to load it", "noise floor"):
        assert section in card.text
    image = hub.ModelCard.load(export_run(runs / "nvp", tmp_path / "nvp") / "README.md")
    assert image.data.pipeline_tag == "unconditional-image-generation" and not image.data.eval_results


def test_push_to_hub_uploads_the_folder(runs, tmp_path):
    from flowforge.jobs import push_to_hub

    class LocalHub:  # HfApi's two calls, into a folder: this machine reaches no Hub
        def __init__(self):
            self.calls = []

        def create_repo(self, repo_id, private=False, exist_ok=False):
            self.calls.append(("create_repo", repo_id, private, exist_ok))
            return f"https://huggingface.co/{repo_id}"

        def upload_folder(self, folder_path, repo_id, commit_message):
            import shutil

            self.calls.append(("upload_folder", repo_id, commit_message))
            shutil.copytree(folder_path, tmp_path / "hub" / repo_id)

    api = LocalHub()
    url = push_to_hub(runs / "rf", "someone/rf-moons", api=api)  # a run: exported on the way
    assert url == "https://huggingface.co/someone/rf-moons"
    assert api.calls[0] == ("create_repo", "someone/rf-moons", False, True)
    assert api.calls[1][2].startswith("flowforge ") and "rf-moons, step 20" in api.calls[1][2]
    uploaded = tmp_path / "hub/someone/rf-moons"
    assert {"config.json", "model.safetensors", "README.md", "samples.png"} <= {p.name for p in uploaded.iterdir()}
    flowforge.from_pretrained(uploaded)  # what arrived loads
