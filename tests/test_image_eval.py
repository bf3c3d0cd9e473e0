"""Image runs are scored in a fixed extractor by `flowforge eval`, and `flowforge compare` puts runs side by side."""

import csv
import json
import subprocess
import sys

import pytest

from flowforge import evaluate, load_config
from flowforge.errors import RunError
from flowforge.jobs import compare_runs
from flowforge.train import train

DIGITS_UNET = {"data.name": "digits", "model.net.name": "unet", "model.net.channels": 8,
               "model.net.channel_mult": "[1,2]", "model.net.attention_levels": "[1]", "model.net.num_res_blocks": 1,
               "train.steps": 4, "train.batch_size": 16, "train.warmup_steps": 0, "sample.steps": 3,
               "eval.n_samples": 100}


@pytest.fixture(scope="module")
def digits_runs(tmp_path_factory):
    from conftest import tiny_overrides

    root = tmp_path_factory.mktemp("img")
    for name, extra in (("cond", {"model.num_classes": 10}), ("uncond", {})):
        over = [o for o in tiny_overrides(root / name, **DIGITS_UNET, **extra)
                if not o.startswith(("model.net.width", "model.net.depth"))]
        train(load_config("configs/fm-digits.yaml", over), progress=False)
        evaluate(root / name)
    return root


def test_eval_scores_images_beside_floor_and_baseline(digits_runs):
    import json

    record = json.loads((digits_runs / "cond" / "eval.json").read_text())
    image = record["image"]
    assert image["extractor"] == "digits" and image["reference"] == "digits:test" and image["n_samples"] == 100
    model, floor, gaussian = image["model"], image["noise_floor"], image["matched_gaussian"]
    # training images are near the test images in the classifier's features; a Gaussian and a 4-step model are not
    assert floor["fd"] < gaussian["fd"] < model["fd"]
    assert floor["precision"] > 0.8 and floor["recall"] > 0.8 and floor["label_accuracy"] > 0.95
    assert 0.0 <= model["label_accuracy"] <= 1.0  # class-conditional samples: scored against their labels
    assert "label_accuracy" not in gaussian
    uncond = json.loads((digits_runs / "uncond" / "eval.json").read_text())["image"]["model"]
    assert "label_accuracy" not in uncond and sum(uncond["class_histogram"]) == 100
    assert record["nfe"] == 5 and record["parameters"] > 0  # heun, 3 steps, Euler last: the eval records its cost
    report = (digits_runs / "cond" / "report.md").read_text()
    assert "`digits` extractor" in report and "| noise floor (training images) |" in report


def test_compare_writes_table_csv_and_figure(digits_runs, tmp_path):
    paths = compare_runs([digits_runs / "cond", digits_runs / "uncond"], tmp_path / "cmp")
    table = paths["markdown"].read_text().splitlines()
    assert table[0].startswith("| run | data | model | parameters") and "| FD | (floor) |" in table[0]
    assert [line.split(" | ")[0] for line in table[2:]] == ["| cond", "| uncond"]
    rows = list(csv.DictReader(paths["csv"].open()))
    assert [r["run"] for r in rows] == ["cond", "uncond"] and float(rows[0]["fd_floor"]) < float(rows[0]["fd"])
    assert paths["figure"].stat().st_size > 0
    assert [r["run"] for r in json.loads(paths["json"].read_text())["rows"]] == ["cond", "uncond"]


def test_compare_needs_evaluated_runs(digits_runs, tmp_path):
    (tmp_path / "fresh").mkdir()
    with pytest.raises(RunError, match="flowforge eval"):
        compare_runs([tmp_path / "fresh"], tmp_path / "cmp")
    proc = subprocess.run([sys.executable, "-m", "flowforge.cli", "compare", str(digits_runs / "cond"),
                           "--out", str(tmp_path / "c")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "| cond |" in proc.stdout and (tmp_path / "c.csv").is_file()
