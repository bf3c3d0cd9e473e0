"""Attention's memory and time as the sequence grows: flowforge's path (``flowforge.nets.attention.attend``, SDPA's
fused kernel) against a naive ``softmax(Q K^T / sqrt(d)) V`` that builds the L x L scores, forward and backward.

For each length ``L`` in ``--lengths`` (default 256 to 16384 tokens), one batch of ``--heads`` heads of dimension
``--head-dim``: the median step time over ``--repeats`` steps and the peak memory the first step adds to the
process (``VmHWM`` growth after ``reset_peak_rss``, Linux; CPU torch keeps no allocator statistics). Each length
runs in a fresh worker process so that one length's peak does not hide the next's. The naive path is skipped above
``--naive-max`` tokens (default 8192; its scores alone take ``4 heads L^2`` bytes, 4 GB at 16k tokens and 4 heads).

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.attention_memory
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from benchmarks.harness import ROOT, peak_rss_mb, reset_peak_rss, rss_mb, write_results


def naive(q, k, v):
    scores = (q @ k.transpose(-1, -2)) / q.shape[-1] ** 0.5  # (B, h, L, L)
    return scores.softmax(-1) @ v


def worker(length: int, heads: int, head_dim: int, repeats: int, path: str) -> dict:
    """One path at one length in this (fresh) process: the peak memory of its first step, measured before anything
    else ran (a warm-up would leave freed memory resident and hide the growth), then the median of timed steps."""
    import torch

    from flowforge.nets import attend

    fn = attend if path == "sdpa" else naive
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, heads, length, head_dim, generator=gen, requires_grad=True) for _ in range(3))
    base = rss_mb()
    reset_peak_rss()
    fn(q, k, v).sum().backward()
    peak = peak_rss_mb() - base
    times = []
    for _ in range(repeats):
        q.grad = k.grad = v.grad = None
        t0 = time.perf_counter()
        fn(q, k, v).sum().backward()
        times.append(time.perf_counter() - t0)
    return {"median_s": sorted(times)[len(times) // 2], "peak_growth_mb": peak}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lengths", type=int, nargs="+", default=[256, 1024, 4096, 8192, 16384])
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--head-dim", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--naive-max", type=int, default=8192, help="longest naive run (its 16k-token step needs "
                    "several 4 GB score-sized tensors)")
    ap.add_argument("--out", default=None, help="results JSON (default benchmarks/results/attention_memory.json)")
    ap.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--path", default="sdpa", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker is not None:
        print(json.dumps(worker(args.worker, args.heads, args.head_dim, args.repeats, args.path)))
        return
    rows = []
    for length in args.lengths:
        row = {"length": length}
        for path in ("sdpa", "naive") if length <= args.naive_max else ("sdpa",):
            cmd = [sys.executable, "-m", __spec__.name, "--worker", str(length), "--path", path,
                   "--heads", str(args.heads), "--head-dim", str(args.head_dim), "--repeats", str(args.repeats)]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT)
            row[path] = json.loads(proc.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(json.dumps(row), flush=True)
    path = write_results("attention_memory", {"heads": args.heads, "head_dim": args.head_dim,
                                              "repeats": args.repeats, "rows": rows}, args.out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
