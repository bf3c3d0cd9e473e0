"""Packing without padding against padding: training throughput of a DiT on a mixed-resolution batch.

One mixed-resolution batch (the same images for every method: images at three resolutions, drawn like
``data.resolutions``) goes through one training step (forward, a squared-error loss, backward) of a DiT by

- ``packed``: :meth:`flowforge.nets.DiT.forward_packed`, one sequence of the real tokens, attention kept inside
  each image by a :class:`~flowforge.nets.packing.DocumentMask` (``segments`` kernel: fused SDPA per run of
  equal-length images; ``jagged``: SDPA on nested jagged tensors);
- ``padded``: every image's tokens padded to the longest, ``(N, L_max, D)``, with a key-padding mask to SDPA;
- ``equal``: the reference with no padding at all, a batch of equal-length images (all at the largest
  resolution) with as many real tokens as the mixed batch, through the plain :meth:`DiT.forward`.

Throughput is real (image) tokens per second; the ratios ``packed / padded`` and ``packed / equal`` (the
issue's goal: >= 0.9) are taken between medians of interleaved repeats in one process. FlexAttention
(``flex``) is timed on the forward pass only: torch 2.13 has no FlexAttention backward on CPU.

A second table times the attention kernels alone (``q, k, v`` of the same pack, forward and backward): the
three document-mask kernels, padding, and the explicit ``L x L`` boolean mask that packing avoids. Peak memory
is the growth of the peak resident set (``VmHWM``) over one step, in a fresh subprocess per method after a
warm-up step on one image per resolution (CPU torch has no allocator statistics), so it includes the
allocator's slack: read it as a ratio.

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.packing            # both scenarios, ~5 minutes
    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.packing --quick    # a smoke run (tests)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from flowforge.nets import DiT, grid_positions, sincos_2d
# the packing internals this benchmark measures (the token layout and the document mask), not a user's API
from flowforge.nets.dit import patchify, unpatchify
from flowforge.nets.packing import DocumentMask

from benchmarks.harness import ROOT, peak_rss_mb, reset_peak_rss, rss_mb, write_results

NAME = "packing"


@dataclass(frozen=True)
class Scenario:
    """A DiT and a mixed-resolution batch: ``counts[i]`` images of ``sizes[i]`` px."""

    name: str
    size: str
    patch: int
    sizes: tuple[int, ...]
    counts: tuple[int, ...]

    def tokens(self) -> list[int]:
        return [(s // self.patch) ** 2 for s in self.sizes]


SCENARIOS = {
    # configs/dit-mnist-multires.yaml's shapes: 14, 21, 28 px at patch 7 (4, 9, 16 tokens)
    "mnist-multires": Scenario("mnist-multires", "small", 7, (14, 21, 28), (40, 40, 40)),
    # longer sequences, where attention weighs more: 14, 20, 28 px at patch 2 (49, 100, 196 tokens)
    "patch2": Scenario("patch2", "small", 2, (14, 20, 28), (8, 8, 8)),
}
QUICK = {"mnist-multires": Scenario("mnist-multires", "tiny", 7, (14, 21, 28), (4, 4, 4))}


def make(s: Scenario, seed: int = 0):
    torch.manual_seed(seed)
    net = DiT((1, max(s.sizes), max(s.sizes)), size=s.size, patch=s.patch, num_classes=10)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # non-zero modulation, so that no block is the identity
        for p in net.parameters():
            if not p.any():
                p.copy_(0.02 * torch.randn(p.shape, generator=gen))
    xs = [torch.randn(n, 1, r, r, generator=gen) for n, r in zip(s.counts, s.sizes)]
    n = sum(s.counts)
    t, y = torch.rand(n, generator=gen), torch.randint(0, 10, (n,), generator=gen)
    real = sum(c * k for c, k in zip(s.counts, s.tokens()))
    n_equal = max(1, round(real / s.tokens()[-1]))  # as many real tokens, all at the largest size
    x_equal = torch.randn(n_equal, 1, s.sizes[-1], s.sizes[-1], generator=gen)
    return net, xs, t, y, x_equal


def padded_forward(net: DiT, xs: list[torch.Tensor], t: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    """The baseline: every image's tokens padded to the longest, one (N, L_max, D) batch, a key-padding mask."""
    p = net.patch
    grids = [net._grid(*x.shape[-2:]) for x in xs]
    per_image = [tok for x in xs for tok in patchify(x, p)]  # N x (l_i, p p C)
    lengths = torch.tensor([len(tok) for tok in per_image])
    longest = int(lengths.max())
    tokens = torch.nn.utils.rnn.pad_sequence(per_image, batch_first=True)  # (N, L_max, p p C)
    pos = torch.nn.utils.rnn.pad_sequence(
        [grid_positions(h, w, net.reference) for x, (h, w) in zip(xs, grids) for _ in range(len(x))],
        batch_first=True)  # (N, L_max, 2)
    keep = torch.arange(longest)[None] < lengths[:, None]  # (N, L_max)
    c = net.embed(t, y)  # (N, D)
    h = net.embed_patches(tokens) + sincos_2d(pos.flatten(0, 1), net.size.hidden).view(len(keep), longest, -1)
    h = net._blocks(h, c, None, keep[:, None, None, :])  # (N, L_max, D); pad keys masked out
    out = net.final(h, c)  # (N, L_max, p p C)
    outs, i = [], 0
    for x, (gh, gw) in zip(xs, grids):
        outs.append(unpatchify(out[i:i + len(x), :gh * gw], p, *x.shape[-2:]))
        i += len(x)
    return outs


def step(method: str, net, xs, t, y, x_equal) -> None:
    """One training step's compute: forward, a squared loss, backward (forward only for ``flex``)."""
    if method == "flex":
        with torch.no_grad():
            net.forward_packed(xs, t, y, kernel="flex")
        return
    if method == "equal":
        outs = [net(x_equal, t[:len(x_equal)], y[:len(x_equal)])]
    elif method == "padded":
        outs = padded_forward(net, xs, t, y)
    else:
        outs = net.forward_packed(xs, t, y, kernel=method)
    sum(o.square().mean() for o in outs).backward()
    net.zero_grad(set_to_none=True)


def step_no_grad(method: str, net, xs, t, y, x_equal) -> None:
    with torch.no_grad():
        if method == "padded":
            padded_forward(net, xs, t, y)
        else:
            net.forward_packed(xs, t, y, kernel=method)


# --------------------------------------------------------------------------- attention kernels alone


def attention_inputs(s: Scenario, heads: int = 4, dim: int = 32, seed: int = 0):
    lengths = [k for c, k in zip(s.counts, s.tokens()) for _ in range(c)]
    gen = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(1, heads, sum(lengths), dim, generator=gen) for _ in range(3))
    return lengths, q, k, v


def attention_step(method: str, lengths, q, k, v, mask=None, backward: bool = True) -> None:
    q, k, v = (x.detach().requires_grad_(backward) for x in (q, k, v))
    with torch.set_grad_enabled(backward):
        if method in ("segments", "jagged", "flex"):
            out = mask.attend(q, k, v)
        elif method == "padded":
            n = torch.tensor(lengths)
            pad = [torch.nn.utils.rnn.pad_sequence(list(x[0].transpose(0, 1).split(lengths)), batch_first=True)
                   .transpose(1, 2) for x in (q, k, v)]  # 3 x (N, nh, L_max, d)
            keep = torch.arange(int(n.max()))[None] < n[:, None]  # (N, L_max)
            out = F.scaled_dot_product_attention(*pad, attn_mask=keep[:, None, None, :]).transpose(1, 2)[keep]
        else:  # dense: the explicit L x L block-diagonal mask
            ids = torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths))
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=ids[:, None] == ids[None])
        if backward:
            out.square().sum().backward()


# --------------------------------------------------------------------------- measurement


def worker(kind: str, scenario: Scenario, method: str) -> dict:
    """Peak memory growth of one step of ``method`` in this (fresh) process, after everything else is built.

    A first step on one image per resolution loads the kernels' libraries and compiles FlexAttention (hundreds
    of MB of code and workspaces that are not the step's), so the measured growth is the full batch's own."""
    tiny = Scenario(scenario.name, scenario.size, scenario.patch, scenario.sizes, (1,) * len(scenario.sizes))
    if kind == "model":
        step(method, *make(tiny))
        args = make(scenario)
        reset_peak_rss()
        base = rss_mb()
        step(method, *args)
    else:
        backward = method != "flex"
        lengths, q, k, v = attention_inputs(tiny)
        attention_step(method, lengths, q, k, v, DocumentMask.build(lengths, method)
                       if method in ("segments", "jagged", "flex") else None, backward=backward)
        lengths, q, k, v = attention_inputs(scenario)
        mask = DocumentMask.build(lengths, method) if method in ("segments", "jagged", "flex") else None
        reset_peak_rss()
        base = rss_mb()
        attention_step(method, lengths, q, k, v, mask, backward=backward)
    return {"peak_growth_mb": max(peak_rss_mb() - base, 0.0)}


def peak_memory(kind: str, scenario: Scenario, method: str, quick: bool) -> float | None:
    """The worker's measurement, or None when the method fails in a fresh process (FlexAttention can: its
    compile at the warm-up shape and then at the batch's shape hits inductor's C++ error)."""
    cmd = [sys.executable, "-m", __spec__.name, "--worker", kind, scenario.name, method]
    cmd += ["--quick"] if quick else []
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=ROOT,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    if proc.returncode != 0:
        if method != "flex":
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])["peak_growth_mb"]


def try_flex(fn) -> str | None:
    """Run ``fn``; the first line of the error it raises (FlexAttention on CPU: no backward, and inductor's C++
    template fails to compile at some shapes in torch 2.13), or None."""
    try:
        fn()
    except Exception as err:  # noqa: BLE001 -- any failure of FlexAttention is a result here, recorded
        lines = [ln for ln in str(err).splitlines() if "error" in ln.lower()] or str(err).splitlines() or [""]
        return f"{type(err).__name__}: {lines[0][:300]}"
    return None


def interleaved(fns: dict, repeats: int) -> dict[str, list[float]]:
    """Seconds per call of each function, alternating them ``repeats`` times so load hits all alike."""
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return times


def measure_model(s: Scenario, repeats: int, quick: bool) -> dict:
    net, xs, t, y, x_equal = make(s)
    real = sum(c * k for c, k in zip(s.counts, s.tokens()))
    padded_tokens = sum(s.counts) * max(s.tokens())
    equal_tokens = len(x_equal) * s.tokens()[-1]
    # sanity: the three layouts compute the same function (fp32)
    with torch.no_grad():
        ref = net.forward_packed(xs, t, y)
        for other in (padded_forward(net, xs, t, y), net.forward_packed(xs, t, y, kernel="jagged")):
            assert all(torch.allclose(a, b, atol=1e-4) for a, b in zip(ref, other))
    methods = ("segments", "jagged", "padded", "equal")
    t0 = time.perf_counter()
    flex_error = try_flex(lambda: step_no_grad("flex", net, xs, t, y, x_equal))  # torch.compile
    flex_compile = time.perf_counter() - t0
    forward_methods = ("segments", "jagged", "padded") + (("flex",) if flex_error is None else ())
    for m in methods:  # warm-up
        step(m, net, xs, t, y, x_equal)
    train_times = interleaved({m: (lambda m=m: step(m, net, xs, t, y, x_equal)) for m in methods}, repeats)
    fwd_times = interleaved({m: (lambda m=m: step_no_grad(m, net, xs, t, y, x_equal))
                             for m in forward_methods}, repeats)
    tokens = {"segments": real, "jagged": real, "padded": real, "equal": equal_tokens, "flex": real}
    train = {m: {"median_s": statistics.median(v), "real_tokens_per_s": tokens[m] / statistics.median(v),
                 "peak_growth_mb": peak_memory("model", s, m, quick)} for m, v in train_times.items()}
    forward = {m: {"median_s": statistics.median(v), "real_tokens_per_s": tokens[m] / statistics.median(v)}
               for m, v in fwd_times.items()}
    packed = train["segments"]
    return {
        "scenario": {"dit": f"DiT-{s.size}/{s.patch}", "sizes_px": list(s.sizes), "images": list(s.counts),
                     "tokens_per_image": s.tokens(), "parameters": sum(p.numel() for p in net.parameters())},
        "real_tokens": real, "padded_tokens": padded_tokens, "equal_batch_images": len(x_equal),
        "equal_batch_tokens": equal_tokens, "padding_fraction_avoided": 1 - real / padded_tokens,
        "train_step": train, "forward_only": forward, "flex_compile_s": flex_compile, "flex_error": flex_error,
        "packed_over_padded_throughput": packed["real_tokens_per_s"] / train["padded"]["real_tokens_per_s"],
        "packed_over_equal_throughput": packed["real_tokens_per_s"] / train["equal"]["real_tokens_per_s"],
        "packed_over_padded_memory": packed["peak_growth_mb"] / max(train["padded"]["peak_growth_mb"], 1e-9),
        "flex_over_segments_forward": (forward["segments"]["median_s"] / forward["flex"]["median_s"]
                                       if "flex" in forward else None),
        "repeats": repeats,
    }


def measure_attention(s: Scenario, repeats: int, quick: bool) -> dict:
    lengths, q, k, v = attention_inputs(s)
    masks = {m: DocumentMask.build(lengths, m) for m in ("segments", "jagged")}
    t0 = time.perf_counter()
    masks["flex"] = DocumentMask.build(lengths, "flex")
    flex_mask_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    flex_error = try_flex(lambda: attention_step("flex", lengths, q, k, v, masks["flex"], backward=False))
    flex_compile = time.perf_counter() - t0
    flex_backward = try_flex(lambda: attention_step("flex", lengths, q, k, v, masks["flex"], backward=True))
    out = {"heads": q.shape[1], "head_dim": q.shape[3], "tokens": sum(lengths), "images": len(lengths),
           "flex_block_mask_build_s": flex_mask_s, "flex_compile_s": flex_compile, "flex_error": flex_error,
           "flex_backward_error": flex_backward}
    forward_methods = ("segments", "jagged", "padded", "dense") + (("flex",) if flex_error is None else ())
    fwd_bwd = {m: (lambda m=m: attention_step(m, lengths, q, k, v, masks.get(m)))
               for m in ("segments", "jagged", "padded", "dense")}
    fwd = {m: (lambda m=m: attention_step(m, lengths, q, k, v, masks.get(m), backward=False))
           for m in forward_methods}
    for fns in (fwd_bwd, fwd):
        for fn in fns.values():
            fn()
    t_fb, t_f = interleaved(fwd_bwd, repeats), interleaved(fwd, repeats)
    out["forward_backward_ms"] = {m: 1000 * statistics.median(v) for m, v in t_fb.items()}
    out["forward_ms"] = {m: 1000 * statistics.median(v) for m, v in t_f.items()}
    out["peak_growth_mb"] = {m: peak_memory("attention", s, m, quick) for m in forward_methods}
    return out


def table(results: dict) -> str:
    lines = ["| scenario | method | train step (ms) | real tokens/s | vs padded | vs equal-length | peak growth (MB) |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        pad, eq = r["train_step"]["padded"], r["train_step"]["equal"]
        for m, v in r["train_step"].items():
            lines.append(f"| {name} | {m} | {1000 * v['median_s']:.1f} | {v['real_tokens_per_s']:.0f} | "
                         f"{v['real_tokens_per_s'] / pad['real_tokens_per_s']:.2f}x | "
                         f"{v['real_tokens_per_s'] / eq['real_tokens_per_s']:.2f}x | {v['peak_growth_mb']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--quick", action="store_true", help="a tiny DiT and batch, 3 repeats: a smoke run")
    parser.add_argument("--out", type=Path, default=None, help="results file (default benchmarks/results/packing.json)")
    parser.add_argument("--worker", nargs=3, metavar=("KIND", "SCENARIO", "METHOD"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    scenarios = QUICK if args.quick else SCENARIOS
    if args.worker:
        kind, name, method = args.worker
        print(json.dumps(worker(kind, scenarios[name], method)))
        return
    repeats = 3 if args.quick else args.repeats
    results = {name: measure_model(s, repeats, args.quick) for name, s in scenarios.items()}
    attention = {name: measure_attention(s, repeats, args.quick) for name, s in scenarios.items()}
    print(table(results))
    print(json.dumps(attention, indent=1))
    record = {"scenarios": results, "attention": attention, "chosen_kernel": "segments", "quick": args.quick,
              "memory_method": "growth of VmHWM over one step in a fresh process after a small warm-up step, MB"}
    print(f"wrote {write_results(NAME, record, args.out)}")


if __name__ == "__main__":
    main()
