"""benchmarks.few_step_images on a tiny digits chain: a second call keeps the rows of weights it has scored
(the harness's KeyedRows, keyed by the weights' sha256)."""

import json
import shutil

import pytest

from flowforge import load_config
from flowforge.train import train


def test_a_later_call_rescores_only_changed_weights(tmp_path, capsys):
    from conftest import tiny_overrides

    from benchmarks import few_step_images as script

    net = {"data.name": "digits", "model.net.name": "unet", "model.net.channels": 8, "model.net.channel_mult": "[1,2]",
           "model.net.attention_levels": "[1]", "model.net.num_res_blocks": 1, "train.steps": 4,
           "train.batch_size": 16, "train.warmup_steps": 0, "train.ckpt_every": 4}
    over = [o for o in tiny_overrides(tmp_path / "parent", **net)
            if not o.startswith(("model.net.width", "model.net.depth"))]
    train(load_config("configs/fm-digits.yaml", over), progress=False)
    out = tmp_path / "few_step.json"
    argv = ["--parent", str(tmp_path / "parent"), "--out-dir", str(tmp_path / "runs"), "--pairs", "32",
            "--pair-sampler", "euler", "--pair-steps", "2", "--reflow-steps", "3", "--no-distill", "--no-rf3",
            "--meanflow-steps", "0", "--nfes", "1", "2", "--n", "40", "--straightness-n", "4", "--out", str(out),
            "--figure", ""]
    script.main(argv)
    first = json.loads(out.read_text())
    assert {r["model"] for r in first["rows"]} == {"1-RF", "2-RF"} and len(first["rows"]) == 6
    assert all(len(r["weights_sha256"]) == 64 for r in first["rows"])
    assert " keep " not in capsys.readouterr().out

    script.main(argv)  # nothing changed: every row kept, with the time it was scored
    assert "keep 2 of 2 scored rows and the straightness" in capsys.readouterr().out
    assert json.loads(out.read_text())["rows"] == first["rows"]

    script.main([*argv, "--nfes", "1", "2", "3"])  # one more NFE: only that one is sampled
    assert capsys.readouterr().out.count("keep 2 of 3 scored rows and the straightness") == 2
    more = json.loads(out.read_text())["rows"]
    assert [r for r in more if r.get("nfe") != 3] == first["rows"] and sum(r.get("nfe") == 3 for r in more) == 2

    shutil.rmtree(tmp_path / "runs" / "rf2")  # new 2-RF weights: its rows scored afresh, the 1-RF's kept
    script.main([*argv[:argv.index("--reflow-steps") + 1], "4", *argv[argv.index("--reflow-steps") + 2:]])
    third = json.loads(out.read_text())["rows"]
    assert [r for r in third if r["model"] == "1-RF"] == [r for r in first["rows"] if r["model"] == "1-RF"]
    rf2 = [r for r in third if r["model"] == "2-RF"]
    assert len(rf2) == 3 and all(r["weights_sha256"] != first["rows"][-1]["weights_sha256"] for r in rf2)
    printed = capsys.readouterr().out
    assert "2-RF: weights" not in printed and "1-RF: weights" in printed

    for flag, other in (("--pairs", "33"), ("--pair-sampler", "heun"), ("--pair-steps", "3")):  # other pairs: refused
        changed = [*argv, "--reflow-steps", "4"]
        changed[changed.index(flag) + 1] = other
        with pytest.raises(SystemExit):
            script.main(changed)
        assert f"not {flag} {other}: delete it" in capsys.readouterr().err

    script.main([*argv, "--n", "30", "--reflow-steps", "4"])  # another protocol: scored afresh
    assert all(r["scores"]["model"]["n_samples"] == 30 for r in json.loads(out.read_text())["rows"] if "nfe" in r)
    assert " keep " not in capsys.readouterr().out
