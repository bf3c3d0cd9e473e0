"""Device handling that runs on the CPU: ``--device`` resolved in one place (sample, eval, reflow), noise drawn on
its generator's device, and checkpoints that carry no device (a GPU's loads on the CPU). The GPU side of the same
checks is tests/test_cuda.py."""

import base64

import numpy as np
import pytest
import torch

from flowforge.cli.main import main
from flowforge.errors import UserError
from flowforge.jobs import evaluate, reflow_config, sample_run
from flowforge.jobs.device import device_generator, resolve_device
from flowforge.runs import load_run
from flowforge.runs.checkpoint import load_weights, rng_state, save_checkpoint, set_rng_state


def _gpus(monkeypatch, count: int) -> None:
    """Make PyTorch report ``count`` CUDA GPUs (resolution only: nothing is put on them)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)


@pytest.mark.parametrize("text, gpus, expected", [
    ("auto", 0, "cpu"), ("auto", 1, "cuda"), (None, 0, "cpu"), ("cpu", 2, "cpu"), (" CPU ", 0, "cpu"),
    ("cuda", 1, "cuda"), ("cuda:1", 2, "cuda:1"), ("cuda:0", 1, "cuda:0")])
def test_resolve_device(monkeypatch, text, gpus, expected):
    _gpus(monkeypatch, gpus)
    assert resolve_device(text) == torch.device(expected)


@pytest.mark.parametrize("text, gpus, says", [
    ("gpu", 1, "expected auto, cpu, cuda or cuda:N"), ("cpu:1", 1, "expected auto"), ("cuda:x", 1, "expected auto"),
    ("cuda", 0, "sees no CUDA GPU"), ("cuda:0", 0, "use --device cpu"), ("cuda:2", 2, "cuda:0 to cuda:1")])
def test_resolve_device_refuses(monkeypatch, text, gpus, says):
    _gpus(monkeypatch, gpus)
    with pytest.raises(UserError, match=says) as err:
        resolve_device(text)
    assert f"--device {text.strip().lower()}" in str(err.value)


def test_device_generator_is_seeded_on_its_device():
    gen = device_generator(torch.device("cpu"), 7)
    assert gen.device == torch.device("cpu")
    assert torch.equal(torch.randn(5, generator=gen), torch.randn(5, generator=torch.Generator().manual_seed(7)))


@pytest.mark.parametrize("verb", ["sample", "eval"])
def test_cli_refuses_a_missing_gpu(monkeypatch, capsys, run_copy, tmp_path, verb):
    _gpus(monkeypatch, 0)
    argv = [verb, str(run_copy), "--n", "8", "--device", "cuda"] + (["--out", str(tmp_path / "x.npy")]
                                                                     if verb == "sample" else [])
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"flowforge {verb}: error: --device cuda: PyTorch sees no CUDA GPU" in err
    assert not (tmp_path / "x.npy").exists()


def test_cli_inpaint_refuses_a_missing_gpu_before_loading(monkeypatch, capsys, run_copy, tmp_path):
    _gpus(monkeypatch, 0)
    out = tmp_path / "fill.png"
    assert main(["inpaint", str(run_copy), "--mask", "left", "--out", str(out), "--device", "cuda"]) == 2
    assert "flowforge inpaint: error: --device cuda: PyTorch sees no CUDA GPU" in capsys.readouterr().err
    assert not out.exists()


def test_cli_reflow_refuses_a_missing_gpu(monkeypatch, capsys, run_copy):
    _gpus(monkeypatch, 0)
    assert main(["reflow", str(run_copy), "--pairs", "16", "--device", "cuda:0"]) == 2
    assert "--device cuda:0: PyTorch sees no CUDA GPU" in capsys.readouterr().err


def test_reflow_device_sets_train_cpu(monkeypatch, run_copy):
    _gpus(monkeypatch, 2)
    assert reflow_config(run_copy, pairs=16, device="cpu").train.cpu is True
    assert reflow_config(run_copy, pairs=16, device="cuda").train.cpu is False
    assert reflow_config(run_copy, pairs=16, device="auto").train.cpu is load_run(run_copy).config.train.cpu
    with pytest.raises(UserError, match="CUDA_VISIBLE_DEVICES=1"):  # Accelerate trains on the first visible GPU
        reflow_config(run_copy, pairs=16, device="cuda:1")


def test_sample_device_cpu_is_auto_without_gpu(monkeypatch, run_copy, tmp_path):
    """``--device auto`` on a machine without a GPU is the CPU: the same samples, from the same seed."""
    _gpus(monkeypatch, 0)
    a = np.load(sample_run(run_copy, n=64, out=tmp_path / "a.npy", seed=3, device="cpu"))
    b = np.load(sample_run(run_copy, n=64, out=tmp_path / "b.npy", seed=3))
    c = np.load(sample_run(run_copy, n=64, out=tmp_path / "c.npy", seed=4, device="cpu"))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_eval_takes_a_device(monkeypatch, run_copy):
    _gpus(monkeypatch, 0)
    with pytest.raises(UserError, match="--device cuda:3"):
        evaluate(run_copy, n_samples=50, device="cuda:3")
    record = evaluate(run_copy, n_samples=50, n_likelihood=20, device="cpu")
    assert record["n_samples"] == 50 and np.isfinite(record["likelihood"]["nll"])


def test_prior_draws_on_the_generator_device():
    """A path's prior draw follows its generator's device (a GPU generator draws on the GPU, with no copy from the
    host), and draws exactly what the generator gives there."""
    from flowforge.paths import LinearPath

    gen = torch.Generator().manual_seed(0)
    x = LinearPath().prior_sample((3, 2), 1.0, generator=gen)
    assert x.device == torch.device("cpu")
    assert torch.equal(x, torch.randn(3, 2, generator=torch.Generator().manual_seed(0)))


# --------------------------------------------------------------------------- checkpoints carry no device


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.SiLU(), torch.nn.Linear(8, 2))


def test_checkpoint_loads_into_a_model_built_on_the_meta_device(tmp_path):
    """Weights saved from one device load into a model made elsewhere: here built on 'meta' (no storage, as a
    large model is built before its weights arrive), given CPU storage, then filled from the file."""
    net = _net()
    opt = torch.optim.AdamW(net.parameters())
    net(torch.randn(4, 3)).square().mean().backward()
    opt.step()
    ckpt = save_checkpoint(tmp_path, 1, model=net, optimizer=opt, ema=None, state={"rng": rng_state()}, keep_last=1)
    with torch.device("meta"):
        fresh = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.SiLU(), torch.nn.Linear(8, 2))
    assert all(p.device.type == "meta" for p in fresh.parameters())
    fresh = fresh.to_empty(device="cpu")
    load_weights(fresh, ckpt / "model.safetensors")
    for (name, p), q in zip(net.state_dict().items(), fresh.state_dict().values()):
        assert q.device.type == "cpu" and torch.equal(p, q), name


def test_gpu_random_state_is_ignored_on_a_cpu(monkeypatch):
    """A checkpoint written on a GPU carries its CUDA generators' states; on a machine without one the CPU's,
    NumPy's and Python's are restored and the CUDA part is left out, not an error."""
    state = rng_state()
    expected = torch.rand(4)
    state["cuda"] = [base64.b64encode(bytes(16)).decode()]
    _gpus(monkeypatch, 0)
    set_rng_state(state)
    assert torch.equal(torch.rand(4), expected)
