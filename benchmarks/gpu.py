"""GPU benchmark (issue 28): DiT training throughput and MFU, packing against padding, sampling throughput, and a
short MNIST run beside the CPU's, in one script that writes one results file.

Sections, each with its own share of the time budget (``--seconds``, default 420: the whole script stays under 8
minutes on one H100; a section that runs out stops early and records what it skipped and why):

- ``dit_train``: DiT-B/2 and DiT-XL/2 (Peebles & Xie 2023: sin-cos positions, no QK-norm, 1000 classes) training
  on 32x32x4 latents (256 tokens), batch 256, bf16 autocast, attention restricted to the flash backend with
  :func:`torch.nn.attention.sdpa_kernel` (a step that cannot use it fails, it is not silently rerouted): eager,
  ``torch.compile`` d, and eager with gradient checkpointing per block. Images/s, peak memory, and model FLOPs
  utilisation: FLOPs counted by :func:`dit_forward_flops` (2 per multiply-add, checked against
  :class:`torch.utils.flop_counter.FlopCounterMode` in ``tests/test_bench_gpu.py``; training = 3x forward; the
  recomputation of checkpointing is not counted) over the card's dense bf16 peak (:data:`PEAK_BF16_TFLOPS`,
  ``--peak-tflops`` for another card). Then :mod:`torch.profiler` over a few steps of the XL/2 row: the kernels
  that take the time.
- ``packing``: DiT-B/2 on SD3-like mixes of 256 / 1024 / 4096 tokens per image, one training step (forward and
  backward): packed with the ``segments`` kernel, packed with FlexAttention's block mask (compiled on the GPU),
  and padded to the longest image with a key-padding mask; real tokens/s each, and the largest difference
  between the flex and segments outputs.
- ``sampling``: images/s at 50 NFE (Euler, batch 64, bf16 autocast, through ``ContinuousFlow.sample``) for the
  DiT-XL/2 model and the class-conditional MNIST U-Net (``configs/fm-mnist-class-cpu.yaml``): eager,
  ``torch.compile``, and ``torch.compile(mode="reduce-overhead")`` (CUDA graphs).
- ``mnist_unet``: that U-Net preset trained for a fixed wall-clock time on the GPU, scored by ``flowforge eval``
  (FD in the pinned MNIST extractor, same protocol), beside the CPU run of ``benchmarks/results/compare_mnist.json``.

It installs nothing: it runs on the machine's own PyTorch (CUDA build) with flowforge importable
(``pip install --no-deps -e .`` or ``PYTHONPATH=src``). On a machine without CUDA it refuses, unless ``--smoke``:
every section at tiny sizes on the CPU in seconds (compiled and FlexAttention rows are skipped there, with the
reason), which ``tests/test_bench_gpu.py`` runs.

    python -m benchmarks.gpu --out benchmarks/results/gpu.json        # one GPU, under 8 minutes
    python -m benchmarks.gpu --smoke --out /tmp/gpu-smoke.json         # any machine, seconds
"""

from __future__ import annotations

import argparse
import gc
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from benchmarks.harness import RESULTS, write_results

NAME = "gpu"
# dense (no sparsity) bf16 tensor-core peak, TFLOP/s, from the vendors' data sheets; the first name found in
# torch.cuda.get_device_name() wins, so the more specific names come first
PEAK_BF16_TFLOPS = {"H100 PCIe": 756.0, "H100 NVL": 835.0, "H100": 989.4, "H200": 989.4, "GH200": 989.4,
                    "A100": 312.0, "L40S": 362.1, "L4": 121.0, "A10G": 70.0, "RTX 4090": 165.2}
DIT_PAPER_GFLOPS = {"XL": 118.6}  # Peebles & Xie (2023), Table 4: DiT-XL/2 forward at 256 tokens (multiply-adds)
SECTION_SHARE = {"dit_train": 0.40, "packing": 0.20, "sampling": 0.24, "mnist_unet": 0.16}


@dataclass(frozen=True)
class Sizes:
    """What each section runs: the real sizes on a GPU, or tiny ones for ``--smoke``."""

    smoke: bool
    latent: tuple[int, int, int] = (4, 32, 32)
    dits: dict[str, Any] = field(default_factory=lambda: {"DiT-B/2": "B", "DiT-XL/2": "XL"})
    batch: int = 256
    steps: int = 8  # timed training steps per row (fewer when the budget runs out)
    warmup: int = 3
    pack_size: Any = "B"
    pack_mixes: dict[str, tuple[tuple[int, int], ...]] = field(default_factory=lambda: {
        # (tokens per image, images): SD3-like mixes of 256 / 1024 / 4096 tokens (32, 64, 128 px latents, patch 2)
        "256x32+1024x8": ((256, 32), (1024, 8)),
        "256x16+1024x4+4096x1": ((256, 16), (1024, 4), (4096, 1)),
        "1024x4+4096x2": ((1024, 4), (4096, 2)),
        "4096x4": ((4096, 4),),  # one resolution: packing and padding do the same work
    })
    sample_batch: int = 64
    nfe: int = 50
    mnist_calibration_steps: int = 30
    mnist_n_samples: int = 1000
    mnist_n_likelihood: int = 50
    compile: bool = True


def smoke_sizes() -> Sizes:
    from flowforge.nets import DiTSize

    return Sizes(smoke=True, latent=(4, 8, 8), batch=4, steps=2, warmup=1, sample_batch=4, nfe=3,
                 dits={"DiT-B/2 (smoke size)": DiTSize(depth=2, hidden=32, heads=2),
                       "DiT-XL/2 (smoke size)": DiTSize(depth=2, hidden=48, heads=2)},
                 pack_size=DiTSize(depth=2, hidden=32, heads=2),
                 pack_mixes={"16x4+64x1": ((16, 4), (64, 1)), "64x2": ((64, 2),)},
                 mnist_calibration_steps=2, mnist_n_samples=16, mnist_n_likelihood=2, compile=False)


# --------------------------------------------------------------------------- FLOPs, peak, timing


def dit_forward_flops(size: Any, tokens: int, patch_dim: int, time_embed_dim: int = 256,
                      mlp_ratio: float = 4.0) -> int:
    """FLOPs (2 per multiply-add) of one image's forward pass through :class:`flowforge.nets.DiT` of ``size``
    (a :class:`~flowforge.nets.DiTSize` or a name) at ``tokens`` tokens of ``patch_dim = C p p`` values: every
    matrix product (patch embedding, time MLP, per block the adaLN modulation, QKV, attention's two products,
    output projection and MLP; the final adaLN and linear). Norms, activations and the label lookup are left out,
    as :class:`~torch.utils.flop_counter.FlopCounterMode` leaves them out."""
    from flowforge.nets import DIT_SIZES

    size = DIT_SIZES[size] if isinstance(size, str) else size
    d, n, hidden = size.hidden, tokens, int(size.hidden * mlp_ratio)
    block = (d * 6 * d  # adaLN modulation, once per image
             + n * d * 3 * d + n * d * d  # QKV and output projection
             + 2 * n * n * d  # q k^T and (attention) v, all heads
             + 2 * n * d * hidden)  # MLP
    macs = (n * patch_dim * d + time_embed_dim * d + d * d  # patch embedding, time MLP
            + size.depth * block + d * 2 * d + n * d * patch_dim)  # blocks, final adaLN and linear
    return 2 * macs


def peak_tflops(device: torch.device, override: float | None) -> tuple[float | None, str]:
    """The dense bf16 peak of ``device`` and where the number came from."""
    if override is not None:
        return override, "--peak-tflops"
    if device.type != "cuda":
        return None, "no peak for a CPU: MFU is not computed"
    name = torch.cuda.get_device_name(device)
    for key, value in PEAK_BF16_TFLOPS.items():
        if key in name:
            return value, f"data sheet dense bf16 of {key} ({name})"
    return None, f"{name} is not in PEAK_BF16_TFLOPS: give --peak-tflops"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Budget:
    """The seconds a section has left."""

    def __init__(self, seconds: float):
        self.seconds, self.end = seconds, time.perf_counter() + seconds

    def left(self) -> float:
        return self.end - time.perf_counter()


def timed(fn: Callable[[], object], device: torch.device, steps: int, warmup: int, budget: Budget) -> dict:
    """Seconds of ``warmup`` untimed calls (compilation shows here), then of up to ``steps`` timed ones while the
    budget lasts; each call synchronised."""
    t0 = time.perf_counter()
    for _ in range(warmup):
        fn()
    sync(device)
    first = time.perf_counter() - t0
    took = []
    while len(took) < steps and (not took or budget.left() > 0):
        t0 = time.perf_counter()
        fn()
        sync(device)
        took.append(time.perf_counter() - t0)
    return {"warmup_seconds": first, "seconds": took, "median_seconds": statistics.median(took)}


def row(name: str, fn: Callable[[], dict], budget: Budget, need: float, device: torch.device) -> dict:
    """``fn()``'s record, or why it did not run: the budget was spent, the GPU ran out of memory, or it failed."""
    if budget.left() < need:
        return {"row": name, "skipped": f"section budget spent ({budget.left():.0f} s left of "
                                       f"{budget.seconds:.0f}, this row needs about {need:.0f} s)"}
    try:
        out = {"row": name, **fn()}
    except torch.cuda.OutOfMemoryError:
        out = {"row": name, "error": "out of memory"}
    except Exception as err:  # a benchmark row that fails is recorded, and the others still run
        out = {"row": name, "error": f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"}
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    print(f"  {out}", file=sys.stderr, flush=True)
    return out


def peak_memory_gb(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def reset_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


# --------------------------------------------------------------------------- DiT training


def flash_only(device: torch.device):
    """Attention restricted to the flash kernel (CUDA's FlashAttention-2, the CPU's flash-style kernel)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([SDPBackend.FLASH_ATTENTION])


def dit_training_step(net: torch.nn.Module, sizes: Sizes, device: torch.device) -> Callable[[], None]:
    """One rectified-flow training step of ``net`` on a fixed random batch: bf16 autocast, flash attention,
    forward, loss, backward, AdamW."""
    gen = torch.Generator(device).manual_seed(0)
    b = sizes.batch
    x = torch.randn(b, *sizes.latent, generator=gen, device=device)  # (B, C, H, W)
    noise = torch.randn(b, *sizes.latent, generator=gen, device=device)
    t = torch.rand(b, generator=gen, device=device)  # (B,)
    y = torch.randint(0, 1000, (b,), generator=gen, device=device)
    x_t = (1 - t)[:, None, None, None] * x + t[:, None, None, None] * noise
    target = noise - x
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4, fused=device.type == "cuda")

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16), flash_only(device):
            loss = (net(x_t, t, y).float() - target).square().mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def make_dit(size: Any, sizes: Sizes, device: torch.device, checkpoint: bool = False) -> torch.nn.Module:
    from flowforge.nets import DiT

    torch.manual_seed(0)
    return DiT(sizes.latent, size=size, patch=2, qk_norm=False, positions="sincos", checkpoint=checkpoint,
               num_classes=1000).to(device).train()


def dit_train_row(size: Any, sizes: Sizes, device: torch.device, budget: Budget, peak: float | None, *,
                  compiled: bool, checkpoint: bool) -> dict:
    net = make_dit(size, sizes, device, checkpoint)
    if compiled:
        net.compile()
    reset_memory(device)
    times = timed(dit_training_step(net, sizes, device), device, sizes.steps, sizes.warmup, budget)
    tokens = (sizes.latent[1] // 2) * (sizes.latent[2] // 2)
    flops = 3 * dit_forward_flops(net.size, tokens, sizes.latent[0] * 4) * sizes.batch
    achieved = flops / times["median_seconds"] / 1e12
    return {"compiled": compiled, "checkpoint": checkpoint, "parameters": sum(p.numel() for p in net.parameters()),
            "images_per_s": sizes.batch / times["median_seconds"], "tflops_per_step": flops / 1e12,
            "achieved_tflops": achieved, "mfu": achieved / peak if peak else None,
            "peak_memory_gb": peak_memory_gb(device), **times}


def profile_rows(size: Any, sizes: Sizes, device: torch.device, top: int = 12) -> dict:
    """The ops that take the time in three training steps of the eager DiT, by self time on the device."""
    from torch.profiler import ProfilerActivity, profile

    step = dit_training_step(make_dit(size, sizes, device), sizes, device)
    step()
    sync(device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(3):
            step()
        sync(device)
    events = prof.key_averages()

    def self_time(e) -> float:
        return float(getattr(e, "self_device_time_total", 0) or 0) if device.type == "cuda" else e.self_cpu_time_total

    total = sum(self_time(e) for e in events) or 1.0
    ranked = sorted(events, key=self_time, reverse=True)[:top]
    return {"clock": "self device time" if device.type == "cuda" else "self CPU time",
            "top_ops": [{"op": e.key, "share": self_time(e) / total, "ms_per_step": self_time(e) / 3e3}
                        for e in ranked]}


def dit_train_section(sizes: Sizes, device: torch.device, budget: Budget, peak: float | None) -> dict:
    rows = []
    settings = [(False, False), (False, True)] + ([(True, False)] if sizes.compile else [])
    for name, size in sizes.dits.items():
        for compiled, ckpt in settings:
            label = f"{name}{' compiled' if compiled else ''}{' checkpointed' if ckpt else ''}"
            need = 60.0 if compiled and not sizes.smoke else 5.0
            rows.append(row(label, lambda s=size, c=compiled, k=ckpt: dit_train_row(
                s, sizes, device, budget, peak, compiled=c, checkpoint=k), budget, need, device))
    if not sizes.compile:
        rows.append({"row": "compiled rows", "skipped": "--smoke: torch.compile takes minutes on a CPU"})
    largest = list(sizes.dits.items())[-1]
    profiled = row(f"profile of {largest[0]} (eager)", lambda: profile_rows(largest[1], sizes, device), budget,
                   10.0, device)
    paper = DIT_PAPER_GFLOPS.get(largest[1]) if isinstance(largest[1], str) else None
    tokens = (sizes.latent[1] // 2) * (sizes.latent[2] // 2)
    counted = dit_forward_flops(largest[1], tokens, sizes.latent[0] * 4) / 2e9
    return {"rows": rows, "profile": profiled, "flop_check": {"model": largest[0], "counted_gmacs_forward": counted,
                                                              "paper_gflops_forward": paper}}


# --------------------------------------------------------------------------- packing against padding


def pack_inputs(mix: tuple[tuple[int, int], ...], sizes: Sizes, device: torch.device):
    """Images of ``mix`` ((tokens per image, images), ...) at patch 2, their times and labels."""
    gen = torch.Generator(device).manual_seed(1)
    xs = [torch.randn(count, sizes.latent[0], 2 * math.isqrt(tokens), 2 * math.isqrt(tokens), generator=gen,
                      device=device) for tokens, count in mix]  # [(B_g, C, H_g, W_g)]
    n = sum(x.shape[0] for x in xs)
    return xs, torch.rand(n, generator=gen, device=device), torch.randint(0, 1000, (n,), generator=gen, device=device)


def padded_forward(net, xs: list[torch.Tensor], t: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    """Every image's tokens padded to the longest, one (N, L_max, D) batch with a key-padding mask (the baseline
    of ``benchmarks/packing.py``, on the inputs' device)."""
    from flowforge.nets import grid_positions, sincos_2d
    from flowforge.nets.dit import patchify, unpatchify

    device, p = t.device, net.patch
    grids = [net._grid(*x.shape[-2:]) for x in xs]
    per_image = [tok for x in xs for tok in patchify(x, p)]  # N x (l_i, p p C)
    lengths = torch.tensor([len(tok) for tok in per_image], device=device)
    longest = max(len(tok) for tok in per_image)
    tokens = torch.nn.utils.rnn.pad_sequence(per_image, batch_first=True)  # (N, L_max, p p C)
    pos = torch.nn.utils.rnn.pad_sequence(
        [grid_positions(h, w, net.reference, device=device) for x, (h, w) in zip(xs, grids) for _ in range(len(x))],
        batch_first=True)  # (N, L_max, 2)
    keep = torch.arange(longest, device=device)[None] < lengths[:, None]  # (N, L_max)
    h = net.embed_patches(tokens) + sincos_2d(pos.flatten(0, 1), net.size.hidden).view(len(keep), longest, -1)
    c = net.embed(t, y)  # (N, D)
    h = net.final(net._blocks(h.to(c.dtype) if h.dtype != c.dtype else h, c, None, keep[:, None, None, :]), c)
    outs, i = [], 0
    for x, (gh, gw) in zip(xs, grids):
        outs.append(unpatchify(h[i:i + len(x), :gh * gw], p, *x.shape[-2:]))  # (B_g, C, H_g, W_g)
        i += len(x)
    return outs


def pack_step(net, method: str, xs, t, y, device: torch.device) -> Callable[[], None]:
    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            outs = padded_forward(net, xs, t, y) if method == "padded" else net.forward_packed(xs, t, y,
                                                                                              kernel=method)
            loss = sum(o.float().square().mean() for o in outs)
        loss.backward()
        net.zero_grad(set_to_none=True)

    return step


def flex_difference(net, xs, t, y) -> float:
    """The largest absolute difference between the flex and segments outputs (float32, no autocast)."""
    with torch.no_grad():
        a = net.forward_packed(xs, t, y, kernel="segments")
        b = net.forward_packed(xs, t, y, kernel="flex")
    return max(float((u - v).abs().max()) for u, v in zip(a, b))


def packing_section(sizes: Sizes, device: torch.device, budget: Budget) -> dict:
    net = make_dit(sizes.pack_size, sizes, device)
    with torch.no_grad():  # non-zero adaLN modulation: no block is the identity, the outputs differ by kernel
        for p in net.parameters():
            if not p.any():
                p.normal_(0.0, 0.02)
    methods = ["segments", "padded"] + (["flex"] if sizes.compile else [])
    rows = []
    for label, mix in sizes.pack_mixes.items():
        xs, t, y = pack_inputs(mix, sizes, device)
        real = sum(tok * count for tok, count in mix)
        padded = max(tok for tok, _ in mix) * sum(count for _, count in mix)
        for method in methods:
            def measure(method=method, xs=xs, t=t, y=y, real=real) -> dict:
                times = timed(pack_step(net, method, xs, t, y, device), device, sizes.steps, sizes.warmup, budget)
                extra = {"max_abs_difference_to_segments": flex_difference(net, xs, t, y)} if method == "flex" else {}
                return {"real_tokens": real, "tokens_computed": padded if method == "padded" else real,
                        "real_tokens_per_s": real / times["median_seconds"], **extra, **times}
            need = 40.0 if method == "flex" else 3.0
            rows.append(row(f"{label} {method}", measure, budget, need if not sizes.smoke else 0.0, device))
    if not sizes.compile:
        rows.append({"row": "flex", "skipped": "--smoke: FlexAttention is compiled, and has no backward on a CPU"})
    return {"model": str(sizes.pack_size), "rows": rows}


# --------------------------------------------------------------------------- sampling throughput


def sampling_model(kind: str, sizes: Sizes, device: torch.device):
    """The DiT (XL/2 on 32x32x4 latents, 1000 classes) or the MNIST U-Net preset as a ContinuousFlow, untrained:
    throughput does not depend on the weights."""
    from flowforge import load_config
    from flowforge.models import build_model

    if kind == "dit":
        size = list(sizes.dits.values())[-1]
        overrides = ["model.num_classes=1000", "model.net.patch=2", "model.net.positions=sincos",
                     "model.net.qk_norm=false"] + ([f"model.net.size={size}"] if isinstance(size, str) else [])
        config, shape = load_config("configs/dit-mnist.yaml", overrides), sizes.latent
    else:
        config, shape = load_config("configs/fm-mnist-class-cpu.yaml", SMOKE_UNET if sizes.smoke else []), (1, 28, 28)
    torch.manual_seed(0)
    model = build_model(config.model, {"kind": "image", "shape": list(shape), "value_range": [-1.0, 1.0],
                                       "levels": 256})
    if kind == "dit" and not isinstance(list(sizes.dits.values())[-1], str):  # --smoke: a tiny transformer
        from flowforge.nets import DiT

        model.net = DiT(shape, size=list(sizes.dits.values())[-1], patch=2, qk_norm=False, num_classes=1000)
    return model.to(device).eval(), config.model.num_classes


def sample_row(model, classes: int, sizes: Sizes, device: torch.device, budget: Budget, mode: str) -> dict:
    base = model.net
    if mode != "eager":
        model.net = torch.compile(base, mode="reduce-overhead" if mode == "cuda graphs" else None)
    labels = torch.arange(sizes.sample_batch, device=device) % classes

    def draw() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            model.sample(sizes.sample_batch, sampler="euler", steps=sizes.nfe, labels=labels,
                         generator=torch.Generator(device).manual_seed(0))

    try:
        times = timed(draw, device, 3, 1, budget)
    finally:
        model.net = base
    return {"nfe": sizes.nfe, "batch": sizes.sample_batch, "images_per_s": sizes.sample_batch / times["median_seconds"],
            **times}


def sampling_section(sizes: Sizes, device: torch.device, budget: Budget) -> dict:
    modes = ["eager"] + (["compiled", "cuda graphs"] if sizes.compile and device.type == "cuda" else [])
    rows = []
    for kind in ("dit", "unet"):
        model, classes = sampling_model(kind, sizes, device)
        for mode in modes:
            need = 45.0 if mode != "eager" and not sizes.smoke else 2.0
            rows.append(row(f"{kind} {mode}", lambda m=mode, mo=model, c=classes: sample_row(
                mo, c, sizes, device, budget, m), budget, need, device))
    if len(modes) == 1:
        rows.append({"row": "compiled, cuda graphs", "skipped": "needs a CUDA GPU and no --smoke"})
    return {"sampler": "euler", "rows": rows}


# --------------------------------------------------------------------------- the MNIST U-Net to a fixed time


def cpu_reference(preset: str) -> dict | None:
    """The CPU run of ``preset`` in ``benchmarks/results/compare_mnist.json`` (its steps, seconds and scores)."""
    import json

    path = RESULTS / "compare_mnist.json"
    if not path.is_file():
        return None
    for r in json.loads(path.read_text())["rows"]:
        if r["run"] == preset:
            return {k: r.get(k) for k in ("steps", "train_seconds", "sampler", "nfe", "fd", "fd_floor", "precision",
                                          "recall", "bits_per_dim")} | {"source": "benchmarks/results/compare_mnist.json"}
    return None


SMOKE_UNET = ["model.net.channels=4", "model.net.num_res_blocks=1", "model.net.attention_levels=[]"]
# --smoke: a tiny U-Net, two sampler steps, no EMA (no second sampling), no straightness
SMOKE_MNIST = [*SMOKE_UNET, "sample.steps=2", "train.ema_decay=null", "eval.straightness_steps=0"]


def mnist_overrides(sizes: Sizes, root: Path, name: str, steps: int, device: torch.device) -> list[str]:
    small = SMOKE_MNIST if sizes.smoke else []
    return [f"run.dir={root / name}", f"train.steps={steps}", "train.sample_every=0", f"train.ckpt_every={steps}",
            f"train.log_every={max(1, steps // 10)}", "train.tensorboard=false", "train.warmup_steps=0" if sizes.smoke
            else "train.warmup_steps=200", f"train.cpu={str(device.type == 'cpu').lower()}",
            f"train.precision={'bf16' if device.type == 'cuda' else 'fp32'}", *small]


def mnist_section(sizes: Sizes, device: torch.device, budget: Budget, preset: str = "fm-mnist-class-cpu") -> dict:
    """Train ``preset`` for a fixed share of the budget (its step count from a calibration run), score it as the
    CPU run was scored (``flowforge eval``, FD in the pinned MNIST extractor)."""
    from flowforge import load_config
    from flowforge.jobs import evaluate
    from flowforge.train import train

    with tempfile.TemporaryDirectory() as tmp:
        root, n = Path(tmp), sizes.mnist_calibration_steps
        calib = train(load_config(f"configs/{preset}.yaml", mnist_overrides(sizes, root, "calib", n, device)),
                      progress=False)
        per_step = calib.seconds / n
        train_seconds = 0.0 if sizes.smoke else max(0.0, 0.55 * budget.left())
        steps = max(n, int(train_seconds / per_step))
        result = train(load_config(f"configs/{preset}.yaml", mnist_overrides(sizes, root, "run", steps, device)),
                       progress=False)
        record = evaluate(root / "run", n_samples=sizes.mnist_n_samples, n_likelihood=sizes.mnist_n_likelihood,
                          device=str(device))
    image = record.get("image") or {}
    scores = {k: image.get(row, {}).get("fd") for k, row in (("fd", "model"), ("fd_floor", "noise_floor"))}
    return {"preset": preset, "steps": steps, "train_seconds": result.seconds, "seconds_per_step": per_step,
            "sampler": f"{record['sampler']} x{record['steps']}", "nfe": record["nfe"], **scores,
            "precision": image.get("model", {}).get("precision"), "recall": image.get("model", {}).get("recall"),
            "bits_per_dim": record.get("likelihood", {}).get("bits_per_dim"), "n_samples": record["n_samples"],
            "cpu": cpu_reference(preset)}


# --------------------------------------------------------------------------- main


def device_record(device: torch.device) -> dict:
    if device.type != "cuda":
        return {"device": "cpu"}
    props = torch.cuda.get_device_properties(device)
    return {"device": torch.cuda.get_device_name(device), "memory_gb": props.total_memory / 2**30,
            "capability": f"{props.major}.{props.minor}", "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version()}


def run(sizes: Sizes, device: torch.device, seconds: float, peak_override: float | None = None,
        only: tuple[str, ...] = tuple(SECTION_SHARE)) -> dict:
    """Every section in ``only``, each with its share of ``seconds``; the record of the results file."""
    peak, peak_source = peak_tflops(device, peak_override)
    torch.backends.cuda.matmul.allow_tf32 = True  # fp32 leftovers (the loss, AdamW) on tensor cores
    started = time.perf_counter()
    out: dict[str, Any] = {"smoke": sizes.smoke, **device_record(device), "peak_bf16_tflops": peak,
                           "peak_source": peak_source, "seconds_budget": seconds}
    sections = {"dit_train": lambda b: dit_train_section(sizes, device, b, peak),
                "packing": lambda b: packing_section(sizes, device, b),
                "sampling": lambda b: sampling_section(sizes, device, b),
                "mnist_unet": lambda b: mnist_section(sizes, device, b)}
    for name in only:
        budget = Budget(SECTION_SHARE[name] * seconds)
        print(f"{name}: {budget.seconds:.0f} s", file=sys.stderr, flush=True)
        out[name] = row(name, lambda f=sections[name], b=budget: f(b), budget, 0.0, device)
        out[name]["section_seconds"] = budget.seconds - budget.left()
    out["total_seconds"] = time.perf_counter() - started
    return out


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(RESULTS / f"{NAME}.json"), help="the results file (JSON)")
    parser.add_argument("--smoke", action="store_true", help="every section at tiny sizes, on the CPU, in seconds")
    parser.add_argument("--seconds", type=float, default=420.0,
                        help="time budget of all sections together (default 420; startup and a compilation that "
                             "overruns its row's estimate add to it)")
    parser.add_argument("--peak-tflops", type=float, help="the card's dense bf16 peak, when it is not in the table")
    parser.add_argument("--only", nargs="+", choices=list(SECTION_SHARE), default=list(SECTION_SHARE),
                        help="run only these sections")
    args = parser.parse_args(argv)
    if not args.smoke and not torch.cuda.is_available():
        sys.exit(f"benchmarks/gpu.py measures a CUDA GPU, and PyTorch sees none here (torch {torch.__version__}, "
                 f"CUDA build {torch.version.cuda or 'none'}); run it on a GPU machine (docs/gpu.md), or add "
                 f"--smoke to check the script on this CPU at tiny sizes")
    sizes, device = (smoke_sizes(), torch.device("cpu")) if args.smoke else (Sizes(smoke=False), torch.device("cuda"))
    record = run(sizes, device, args.seconds, args.peak_tflops, tuple(args.only))
    path = write_results(NAME, record, path=args.out)
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
