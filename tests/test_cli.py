"""The CLI's verbs on a trained run: every bad input ends in one clear line (exit code 2, no traceback) that
names the problem, and nothing is written by a refused call."""

import pytest
from safetensors.torch import load_file, save_file

from flowforge import load, load_config
from flowforge.config import ConfigError
from flowforge.runs import checkpoint_dirs, latest_checkpoint
from flowforge.train import train
from run_helpers import assert_clean_error, cli


def test_os_errors_and_huge_sample_counts_are_one_line(run_copy, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("")
    assert_clean_error(cli("sample", run_copy, "--n", "4", "--out", afile / "x.npy"), str(afile), "File exists")
    assert_clean_error(cli("sample", run_copy, "--n", "10000000000000", "--out", tmp_path / "x.npy"), "GiB",
                       "draw fewer")
    assert_clean_error(cli("train", "configs/rf-moons.yaml", f"run.dir={afile}", "train.steps=2"), str(afile))


def test_allocation_failures_and_huge_seeds_are_one_line(run_copy):
    assert_clean_error(cli("sample", run_copy, "--n", "8", "--out", run_copy / "x.npy", "--seed", str(10**23)),
                       "--seed must be between 0 and")
    assert_clean_error(cli("eval", run_copy, "--n", "10000000000000"), "GiB")
    assert_clean_error(cli("sample", run_copy, "--n", "8", "--out", run_copy / "x.npy", "--steps", "100000000000"),
                       "out of memory")


@pytest.mark.parametrize("text, words", [(b"", ["is empty", "configs/"]), (b"# nothing\n", ["is empty"]),
                                         (b"run:\n  name: caf\xe9\n", ["not UTF-8", "byte"])])
def test_empty_or_non_utf8_config_is_refused(tmp_path, text, words):
    path = tmp_path / "c.yaml"
    path.write_bytes(text)
    with pytest.raises(ConfigError):
        load_config(path)
    assert_clean_error(cli("train", path), *words)
    assert not (tmp_path / "runs").exists()


def test_edm_stochastic_on_the_linear_path_gets_a_grid_it_can_use(run_copy):
    proc = cli("sample", run_copy, "--n", "8", "--out", run_copy / "x.npy", "--sampler", "edm-stochastic")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert_clean_error(cli("sample", run_copy, "--n", "8", "--out", run_copy / "y.npy", "--sampler",
                           "edm-stochastic", "--grid", "uniform"), "infinite noise", "karras")
    proc = cli("eval", run_copy, "--n", "50", "--sampler", "edm-stochastic", "--grid", "karras", "--steps", "4")
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_nan_weights_give_no_samples_file(run_copy):
    for name in ("model.safetensors", "ema.safetensors"):
        path = latest_checkpoint(run_copy) / name
        save_file({k: v * float("nan") for k, v in load_file(path).items()}, str(path))
    assert_clean_error(cli("sample", run_copy, "--n", "10", "--out", run_copy / "x.npy"), "NaN/inf")
    assert not (run_copy / "x.npy").exists()
    assert_clean_error(cli("eval", run_copy, "--n", "10"), "NaN/inf")


def test_inpaint_validates_out_and_lr(run_copy):
    assert_clean_error(cli("inpaint", run_copy, "--mask", "left", "--out", run_copy / "x.npy"), ".png")
    assert_clean_error(cli("inpaint", run_copy, "--mask", "left", "--out", run_copy / "x.png", "--lr", "nan"),
                       "--lr nan")


def test_info_skips_non_record_lines(run_copy):
    with open(run_copy / "metrics.jsonl", "a") as f:
        f.write("[1, 2]\n\"text\"\n{\"step\": \"x\"}\n")
    proc = cli("info", run_copy)
    assert proc.returncode == 0, proc.stderr
    assert "continuous model on the `linear` path" in proc.stdout


def test_a_flow_refuses_sampler_options_and_info_names_the_family(tmp_path, tiny):
    over = tiny(tmp_path / "run", **{"model.kind": "glow", "data.name": "checkerboard"})
    over = [o for o in over if not o.startswith("model.net.")] + ["model.flow.hidden=16",
                                                                  "model.flow.steps_per_level=2"]
    train(load_config("configs/glow-checkerboard.yaml", over), progress=False)
    model = load(tmp_path / "run")
    with pytest.raises(TypeError):
        model.sample(4, sampler="heun")  # a misspelt or foreign option is an error, never swallowed
    assert model.sample(4, temperature=0.5).shape == (4, 2)
    assert_clean_error(cli("sample", tmp_path / "run", "--n", "4", "--out", tmp_path / "x.npy", "--sampler",
                           "heun"), "normalizing flow", "sampler")
    proc = cli("info", tmp_path / "run")
    assert proc.returncode == 0 and "Glow:" in proc.stdout and "mlp" not in proc.stdout.lower(), proc.stdout
    assert [p.name for p in checkpoint_dirs(tmp_path / "run")]
