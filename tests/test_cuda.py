"""The GPU as a first-class target (issue 28): every test here needs a CUDA GPU, is marked ``cuda``, and skips with
its reason where PyTorch sees none (how to run them: docs/gpu.md). The CPU side of the same checks is
tests/test_device.py.

    pytest -m cuda -rs tests/test_cuda.py        # on a GPU machine: a few minutes
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

NO_GPU = (f"needs a CUDA GPU; PyTorch {torch.__version__} (CUDA build: {torch.version.cuda or 'none'}) sees none "
          f"on this machine. Run `pytest -m cuda -rs tests/test_cuda.py` on a GPU machine (docs/gpu.md)")
pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_GPU)]

# (preset, overrides that make it a seconds-long run): one per model family
FAMILIES = {
    "rf-moons": ["data.n_train=2000", "data.n_test=500"],  # flow matching, MLP
    "realnvp-moons": ["data.n_train=2000", "data.n_test=500"],  # normalizing flow, affine couplings
    "maf-moons": ["data.n_train=2000", "data.n_test=500"],  # autoregressive flow (MADE)
    "glow-checkerboard": ["data.n_train=2000", "data.n_test=500"],  # Glow: ActNorm, 1x1 convolutions
    "fm-digits": [],  # flow matching, U-Net
    "edm-digits": [],  # EDM diffusion, preconditioned U-Net
    "vp-digits": [],  # VP diffusion
    "meanflow-digits": [],  # MeanFlow, one-step
    "dit-mnist": ["data.name=digits", "model.net.size=tiny"],  # DiT, class-conditional
}


def _overrides(run_dir, steps=10, **extra) -> list[str]:
    base = {"run.dir": str(run_dir), "train.steps": steps, "train.batch_size": 64, "train.warmup_steps": 2,
            "train.log_every": 5, "train.sample_every": 0, "train.ckpt_every": steps, "train.tensorboard": False,
            "train.cpu": False, "train.precision": "bf16", "sample.steps": 4, "eval.n_samples": 200,
            "eval.n_exact": 200, "eval.n_projections": 50, "eval.n_likelihood": 20, "eval.straightness_steps": 2}
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]


def _train(preset, run_dir, extra=(), resume=False, **overrides):
    from flowforge import load_config
    from flowforge.train import train

    return train(load_config(f"configs/{preset}.yaml", [*extra, *_overrides(run_dir, **overrides)]), resume=resume,
                 progress=False)


@pytest.mark.parametrize("preset", sorted(FAMILIES))
def test_family_trains_in_bf16_samples_and_scores_on_cuda(preset, tmp_path):
    from flowforge.jobs import evaluate, sample_run

    result = _train(preset, tmp_path / "run", FAMILIES[preset])
    assert next(result.model.parameters()).device.type == "cuda"
    log = [json.loads(line) for line in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in log if "loss" in r]
    assert losses and all(np.isfinite(losses))
    samples = np.load(sample_run(tmp_path / "run", n=64, out=tmp_path / "s.npy", device="cuda"))
    assert samples.shape[0] == 64 and np.isfinite(samples).all()
    record = evaluate(tmp_path / "run", n_samples=200, n_likelihood=20, device="cuda")
    assert np.isfinite(record["likelihood"]["nll"]) if "likelihood" in record else "reconstruction" in record
    assert np.isfinite(record["model"]["energy_distance"])


def test_checkpoint_written_on_gpu_loads_on_cpu_and_back(tmp_path):
    """Trained on the GPU, loaded on the CPU and on the GPU: the same weights, the same velocity field (fp32, no
    TF32), and the CPU can resume the run the GPU wrote."""
    from flowforge.runs import load_run

    _train("rf-moons", tmp_path / "run", FAMILIES["rf-moons"], **{"train.precision": "fp32"})
    on_cpu, on_gpu = load_run(tmp_path / "run", device="cpu"), load_run(tmp_path / "run", device="cuda")
    for (name, a), b in zip(on_cpu.model.state_dict().items(), on_gpu.model.state_dict().values()):
        assert a.device.type == "cpu" and b.device.type == "cuda" and torch.equal(a, b.cpu()), name
    x, t = torch.randn(256, 2, generator=torch.Generator().manual_seed(0)), torch.full((256,), 0.3)
    torch.backends.cuda.matmul.allow_tf32 = False
    with torch.no_grad():
        v_cpu, v_gpu = on_cpu.model.net(x, t), on_gpu.model.net(x.cuda(), t.cuda()).cpu()
    torch.testing.assert_close(v_gpu, v_cpu, rtol=1e-5, atol=1e-5)
    resumed = _train("rf-moons", tmp_path / "run", FAMILIES["rf-moons"], resume=True, steps=20,
                     **{"train.precision": "fp32", "train.cpu": True})
    assert resumed.step == 20 and next(resumed.model.parameters()).device.type == "cpu"


RESUME_SCRIPT = textwrap.dedent("""
    import sys, torch
    from safetensors.torch import load_file
    from flowforge import load_config
    from flowforge.runs import latest_checkpoint
    from flowforge.train import train
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    root, overrides = sys.argv[1], sys.argv[2:]
    def run(name, steps, resume=False):
        cfg = load_config("configs/fm-digits.yaml", overrides + [f"run.dir={root}/{name}", f"train.steps={steps}",
                                                                 f"train.ckpt_every=10"])
        train(cfg, resume=resume, progress=False)
    run("full", 20)
    run("split", 10)
    run("split", 20, resume=True)
    for part in ("model", "ema", "optimizer"):
        a = load_file(latest_checkpoint(f"{root}/full") / f"{part}.safetensors")
        b = load_file(latest_checkpoint(f"{root}/split") / f"{part}.safetensors")
        bad = [k for k in a if not torch.equal(a[k], b[k])]
        assert not bad and a.keys() == b.keys(), (part, bad[:3])
    print("exact")
""")


def test_bit_exact_resume_on_cuda(tmp_path):
    """20 steps in one go == 10 steps, then a resume for 10 more, bit for bit on the GPU (deterministic
    algorithms on, in a fresh process: cuBLAS reads its workspace setting when it starts)."""
    overrides = [o for o in _overrides(tmp_path) if not o.startswith(("run.dir", "train.steps", "train.ckpt_every"))]
    env = {**os.environ, "CUBLAS_WORKSPACE_CONFIG": ":4096:8"}
    done = subprocess.run([sys.executable, "-c", RESUME_SCRIPT, str(tmp_path), *overrides, "train.schedule=constant"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and done.stdout.strip().endswith("exact"), done.stderr[-3000:]


def _transformer(kind: str):
    from flowforge.nets import DiT, MMDiT

    torch.manual_seed(0)
    if kind == "dit":
        net = DiT((4, 16, 16), size="S", patch=2, num_classes=10)
        cond = torch.randint(0, 10, (8,))
    else:
        net = MMDiT((4, 16, 16), vocab_size=50, size="S", patch=2)
        cond = torch.randint(1, 50, (8, 7))
    with torch.no_grad():  # non-zero adaLN modulation: every block does something
        for p in net.parameters():
            if not p.any():
                p.normal_(0.0, 0.02)
    return net.cuda(), torch.randn(8, 4, 16, 16, device="cuda"), torch.rand(8, device="cuda"), cond.cuda()


@pytest.mark.parametrize("backend", [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION])
@pytest.mark.parametrize("kind", ["dit", "mmdit"])
def test_sdpa_runs_on_the_fused_backends(kind, backend):
    """With SDPA restricted to one fused backend (it raises when it cannot use it), the bf16 forward and backward
    run, and the output matches the math backend's."""
    net, x, t, cond = _transformer(kind)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        with sdpa_kernel([SDPBackend.MATH]):
            reference = net(x, t, cond).float()
        with sdpa_kernel([backend]):
            out = net(x, t, cond)
            out.float().square().mean().backward()
    torch.testing.assert_close(out.float(), reference, rtol=2e-2, atol=2e-2)
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in net.parameters())


def test_flex_block_mask_equals_segments_on_cuda():
    """Packed DiT forward and backward with FlexAttention's block mask (compiled on the GPU) against the segments
    kernel: equal outputs and gradients, up to float32 rounding."""
    from flowforge.nets import DiT

    torch.manual_seed(0)
    net = DiT((4, 16, 16), size="tiny", patch=2, num_classes=10, positions="rope").cuda()
    xs = [torch.randn(3, 4, 8, 8, device="cuda"), torch.randn(2, 4, 16, 16, device="cuda"),
          torch.randn(1, 4, 32, 32, device="cuda")]
    t, y = torch.rand(6, device="cuda"), torch.randint(0, 10, (6,), device="cuda")
    grads = {}
    outs = {}
    for kernel in ("segments", "flex"):
        net.zero_grad(set_to_none=True)
        outs[kernel] = net.forward_packed(xs, t, y, kernel=kernel)
        sum(o.square().mean() for o in outs[kernel]).backward()
        grads[kernel] = [p.grad.clone() for p in net.parameters() if p.grad is not None]
    for a, b in zip(outs["flex"], outs["segments"]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    for a, b in zip(grads["flex"], grads["segments"]):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4)


def test_training_steps_draw_their_noise_on_the_gpu(tmp_path, monkeypatch):
    """Every draw of a training run (its steps' noise, times and label dropout, the first batch's initialisation,
    the validation set) comes from a generator on the GPU, so none is copied from the host."""
    from flowforge.rng import BatchRandom

    devices = []
    draw = BatchRandom._draw

    def recording(self, fn, shape, like):
        devices.append(None if self.generator is None else self.generator.device.type)
        return draw(self, fn, shape, like)

    monkeypatch.setattr(BatchRandom, "_draw", recording)
    _train("dit-mnist", tmp_path / "run", FAMILIES["dit-mnist"], steps=3)
    assert devices and set(devices) == {"cuda"}, sorted(set(map(str, devices)))


def test_compiled_training_step_on_cuda(tmp_path):
    """train.compile on the GPU: the same losses as eager to a few digits (Inductor reorders float math)."""
    eager = _train("dit-mnist", tmp_path / "eager", FAMILIES["dit-mnist"], **{"train.precision": "fp32"})
    compiled = _train("dit-mnist", tmp_path / "compiled", FAMILIES["dit-mnist"],
                      **{"train.precision": "fp32", "train.compile": True})
    assert eager.step == compiled.step == 10

    def losses(run):
        return [r["loss"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "loss" in r]

    np.testing.assert_allclose(losses(tmp_path / "compiled"), losses(tmp_path / "eager"), rtol=1e-3)


def test_compiled_sampling_on_cuda(tmp_path):
    """flowforge sample --compile --device cuda draws what eager draws from the same seed (fp32)."""
    from flowforge.jobs import sample_run

    _train("fm-digits", tmp_path / "run", **{"train.precision": "fp32"})
    eager = np.load(sample_run(tmp_path / "run", n=64, out=tmp_path / "a.npy", seed=1, device="cuda"))
    compiled = np.load(sample_run(tmp_path / "run", n=64, out=tmp_path / "b.npy", seed=1, device="cuda",
                                  compile=True))
    np.testing.assert_allclose(compiled, eager, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("sampler, options", [("euler", {}), ("heun", {}), ("dpm++2m", {}), ("ddim", {"eta": 1.0}),
                                              ("edm-stochastic", {"S_churn": 10.0})])
def test_sampling_loop_never_waits_for_the_host(tmp_path, sampler, options):
    """Inside a sampler's loop no operation synchronises with the host (CUDA's sync debug mode raises on one):
    the grid's scalars are host floats, the noise of stochastic samplers is drawn on the GPU."""
    from flowforge.models.field import PathField
    from flowforge.runs import load_run
    from flowforge.solvers import get_solver

    _train("edm-digits", tmp_path / "run")
    model = load_run(tmp_path / "run", device="cuda").model
    solver = get_solver(sampler, **options)
    field = PathField(model, None, model.conditioning(None, 16, torch.device("cuda")))
    times = model.time_grid(6, finite_start=solver.finite_start)
    generator = torch.Generator("cuda").manual_seed(0)
    x = field.path.prior_sample((16, *model.shape), float(times[0]), generator=generator)
    assert x.device.type == "cuda"
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        out = solver.solve(field, x, times, generator=generator).x
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert out.device.type == "cuda" and torch.isfinite(out).all()


def test_the_app_samples_inpaints_and_scores_on_cuda(tmp_path):
    """``flowforge app --device cuda``: the weights on the GPU, the page's inputs moved there and its results back."""
    from test_app import tiny_runs

    from flowforge.app import logic

    entries = logic.open_entries(tiny_runs(tmp_path), device="cuda")
    for entry in entries.values():
        assert entry.device.type == "cuda"
        result = logic.sample(entry, n=8, seed=0)
        assert result.samples.shape[0] == 8 and np.isfinite(result.samples).all()
        if entry.kind == "image":
            x = logic.test_image(entry, 0)
            missing = logic.missing_region(entry, "left", torch.zeros(entry.shape[-2:], dtype=torch.bool))
            assert logic.inpaint(entry, x, missing, steps=3).filled.size[0] > 0
        density = logic.density(entry, entry.dataset().test[:4], n_reference=8)
        assert np.isfinite(density.log_p).all()
