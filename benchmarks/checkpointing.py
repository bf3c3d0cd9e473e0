"""Gradient checkpointing per DiT block: peak memory and step time with and without it, side by side.

The same DiT (depth 12, the issue's setting) trains one step (forward, squared loss, backward) on the same batch
with ``checkpoint=False`` and ``checkpoint=True`` (non-reentrant :func:`torch.utils.checkpoint.checkpoint` per
block: each block's activations are recomputed in the backward pass instead of stored). Step times are medians
of interleaved repeats in one process; peak memory is the growth of the peak resident set (``VmHWM``) over one
step in a fresh process per setting, after a warm-up step on a one-image batch (CPU torch keeps no allocator
statistics), minus the gradients' size, which both settings allocate: what is left is the activation memory.

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.checkpointing           # ~2 minutes
    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.checkpointing --quick   # a smoke run
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import torch

from flowforge.nets import DiT, DiTSize

from benchmarks.harness import ROOT, peak_rss_mb, reset_peak_rss, rss_mb, write_results

NAME = "checkpointing"
SETTINGS = {
    # depth 12 at the width of DiT "small" (128): a CPU-sized DiT-S shape; MNIST 28 px at patch 2, 196 tokens
    "full": {"size": DiTSize(depth=12, hidden=128, heads=4), "pixels": 28, "patch": 2, "batch": 32},
    "quick": {"size": DiTSize(depth=12, hidden=32, heads=2), "pixels": 16, "patch": 4, "batch": 4},
}


def make(setting: dict, checkpoint: bool, batch: int | None = None, seed: int = 0):
    torch.manual_seed(seed)
    net = DiT((1, setting["pixels"], setting["pixels"]), size=setting["size"], patch=setting["patch"],
              num_classes=10, checkpoint=checkpoint).train()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # non-zero adaLN modulation, so that no block is the identity
        for p in net.parameters():
            if not p.any():
                p.copy_(0.02 * torch.randn(p.shape, generator=gen))
    n = batch or setting["batch"]
    x = torch.randn(n, 1, setting["pixels"], setting["pixels"], generator=gen)
    return net, x, torch.rand(n, generator=gen), torch.randint(0, 10, (n,), generator=gen)


def step(net, x, t, y) -> None:
    net(x, t, y).square().mean().backward()
    net.zero_grad(set_to_none=True)


def worker(setting: dict, checkpoint: bool) -> dict:
    step(*make(setting, checkpoint, batch=1))
    net, x, t, y = make(setting, checkpoint)
    reset_peak_rss()
    base = rss_mb()
    step(net, x, t, y)
    grads = sum(p.numel() * p.element_size() for p in net.parameters()) / 2**20
    return {"peak_growth_mb": peak_rss_mb() - base, "gradients_mb": grads}


def memory(name: str, checkpoint: bool) -> dict:
    cmd = [sys.executable, "-m", __spec__.name, "--setting", name, "--worker", str(int(checkpoint))]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="a small DiT, 3 repeats: a smoke run")
    parser.add_argument("--setting", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help="results file (default benchmarks/results/checkpointing.json)")
    args = parser.parse_args()
    name = args.setting or ("quick" if args.quick else "full")
    setting = SETTINGS[name]
    if args.worker is not None:
        print(json.dumps(worker(setting, bool(int(args.worker)))))
        return
    repeats = 3 if args.quick else args.repeats
    cases = {flag: make(setting, flag) for flag in (False, True)}
    for args_ in cases.values():
        step(*args_)  # warm-up
    times = {False: [], True: []}
    for _ in range(repeats):
        for flag, args_ in cases.items():
            t0 = time.perf_counter()
            step(*args_)
            times[flag].append(time.perf_counter() - t0)
    mem = {flag: memory(name, flag) for flag in (False, True)}
    rows = {}
    for flag in (False, True):
        act = mem[flag]["peak_growth_mb"] - mem[flag]["gradients_mb"]
        rows["checkpointed" if flag else "plain"] = {
            "median_step_s": statistics.median(times[flag]), "step_s": times[flag],
            "peak_growth_mb": mem[flag]["peak_growth_mb"], "gradients_mb": mem[flag]["gradients_mb"],
            "activation_mb": act}
    plain, ckpt = rows["plain"], rows["checkpointed"]
    size = setting["size"]
    record = {
        "setting": {"depth": size.depth, "hidden": size.hidden, "heads": size.heads, "pixels": setting["pixels"],
                    "patch": setting["patch"], "tokens": (setting["pixels"] // setting["patch"]) ** 2,
                    "batch": setting["batch"],
                    "parameters": sum(p.numel() for p in cases[False][0].parameters())},
        "rows": rows, "repeats": repeats, "quick": args.quick,
        "activation_memory_saved": (1 - ckpt["activation_mb"] / plain["activation_mb"]
                                    if plain["activation_mb"] > 1 else None),  # below 1 MB: not measurable
        "peak_memory_ratio": ckpt["peak_growth_mb"] / plain["peak_growth_mb"],
        "time_ratio": ckpt["median_step_s"] / plain["median_step_s"],
        "memory_method": "growth of VmHWM over one step in a fresh process after a one-image warm-up step, MB; "
                         "activation = growth - gradients",
    }
    print(f"DiT depth {size.depth}, width {size.hidden}, batch {setting['batch']} x {record['setting']['tokens']} "
          f"tokens ({torch.backends.cpu.get_cpu_capability()}):")
    for label, r in rows.items():
        print(f"  {label:13s} step {1000 * r['median_step_s']:.0f} ms, peak growth {r['peak_growth_mb']:.0f} MB, "
              f"activations {r['activation_mb']:.0f} MB")
    saved = record["activation_memory_saved"]
    print(f"  checkpointing: {'-' if saved is None else f'{100 * saved:.0f}%'} less activation memory, "
          f"{record['time_ratio']:.2f}x the step time")
    print(f"wrote {write_results(NAME, record, args.out)}")


if __name__ == "__main__":
    main()
