"""SD3's QK-norm and training stability: a DiT with and without RMSNorm on queries and keys over a learning-rate
sweep, in bf16 autocast where the CPU has native bf16.

Esser et al. (2024, arXiv:2403.03206, Sec. 5.3.2) saw the attention logits of large runs grow without bound in
mixed precision until the loss diverged, and fixed it by normalising queries and keys (RMSNorm with a learnt gain,
after Dehghani et al. 2023), which bounds every logit by ``|g_q| |g_k| sqrt(d)``. Here the same question is asked of
a small model at a small budget: ``configs/dit-mnist.yaml``'s class-conditional DiT (rotary positions, logit-normal
t) at size ``tiny`` (4 blocks of width 64, 4 heads) and patch 2 on the 8 x 8 digits (16 tokens), batch 64, a
constant learning rate after ``--warmup`` steps, gradient clipping at the preset's 1.0, no EMA (the validation
loss scores the trained weights), ``train.precision=auto`` (bf16 autocast on an AVX512-BF16 / AMX CPU, fp32
elsewhere: the results file and the table name which ran). Per learning rate and arm it records:

- the **largest attention logit** of every training step, over all layers and heads: measured, not estimated, by
  a forward hook on every :class:`flowforge.nets.attention.Attention` that materialises the layer's logits
  ``q k^T / sqrt(d)`` of its actual input (``Attention.scores``) under the step's autocast;
- the training loss every 10 steps, SD3's validation loss (``train.val_every``: 256 held-out digits, fixed noise,
  8 fixed times) at the end, and the step at which training stopped on a non-finite loss or gradient, if it did.

A run counts as stable when its loss stays finite and its last 50 steps' loss is at most 1.5 times the best final
loss of the sweep (both arms, every learning rate, the same seed); the table applies the rule to the rows. A run
whose logits blow up may not stop on a NaN: its loss jumps and settles on a plateau far above the others.

    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python -m benchmarks.sd3_qk_norm --seeds 0 1   # ~10 CPU-minutes
    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.sd3_qk_norm --quick --out /tmp/qk.json   # a smoke run

Rows are kept across calls (``KeyedRows``): a second call computes only what the file lacks. Results:
benchmarks/results/sd3_qk_norm.json and the figure sd3-qk-norm.png beside it
(``python -m benchmarks.render_tables --print sd3_qk_norm``).
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from pathlib import Path

import torch

from flowforge.config import load_config
from flowforge.errors import TrainingDiverged
from flowforge.nets.attention import Attention
from flowforge.runs import read_metrics
from flowforge.train import train
from flowforge.train.precision import choose_precision

from benchmarks.harness import RESULTS, KeyedRows, atomic_write_json, figure_path, pyplot, save_figure, write_results

NAME = "sd3_qk_norm"
PRESET = "configs/dit-mnist.yaml"
LRS = (3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
DIVERGED_RATIO = 1.5  # final loss over the sweep's best final loss (same seed): above it, not stable


class LogitProbe:
    """The largest ``|q k^T / sqrt(d)|`` of each training step over every attention layer, from a global forward
    hook (so it is in place before the first step); forwards without gradients (the first-batch init, the
    validation loss, the last picture) are not training steps and are skipped."""

    def __init__(self):
        self.per_step: list[float] = []
        self.current = 0.0
        self.handle = None

    def hook(self, module, args, output) -> None:
        if isinstance(module, Attention) and torch.is_grad_enabled():
            with torch.no_grad():
                logits = module.scores(args[0], args[1] if len(args) > 1 else None)  # (B, heads, L, L)
            self.current = max(self.current, float(logits.abs().amax()))

    def on_step(self, model, step: int) -> None:
        self.per_step.append(self.current)
        self.current = 0.0

    def __enter__(self) -> LogitProbe:
        self.handle = torch.nn.modules.module.register_module_forward_hook(self.hook)
        return self

    def __exit__(self, *exc) -> None:
        self.handle.remove()


def config(qk_norm: bool, lr: float, seed: int, steps: int, warmup: int, run_dir: Path):
    return load_config(PRESET, [
        f"run.dir={run_dir}", f"run.seed={seed}", "data.name=digits", "model.net.size=tiny", "model.net.patch=2",
        f"model.net.qk_norm={str(qk_norm).lower()}", f"train.lr={lr}", "train.schedule=constant",
        f"train.warmup_steps={warmup}", f"train.steps={steps}", "train.ema_decay=null", "train.precision=auto",
        "train.log_every=10", f"train.val_every={steps}", "train.sample_every=0", f"train.ckpt_every={steps}",
        "train.tensorboard=false", "sample.steps=4"])


def one_run(qk_norm: bool, lr: float, seed: int, steps: int, warmup: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp, LogitProbe() as probe:
        run_dir = Path(tmp) / "run"
        diverged, start = None, time.perf_counter()
        try:
            train(config(qk_norm, lr, seed, steps, warmup, run_dir), progress=False, on_step=probe.on_step)
        except TrainingDiverged as err:
            diverged = int(re.search(r"at step (\d+)", str(err)).group(1))
        seconds = time.perf_counter() - start
        records = read_metrics(run_dir)
    curve = [[r["step"], r["loss"]] for r in records if r.get("kind", "train") == "train"]
    val = [r for r in records if r.get("kind") == "val_loss"]
    last = [loss for _, loss in curve[-5:]]
    final = sum(last) / len(last) if last and diverged is None else None
    return {"qk_norm": qk_norm, "lr": lr, "seed": seed, "steps": steps, "diverged_step": diverged,
            "loss_curve": curve, "first_loss": curve[0][1] if curve else None, "final_loss": final,
            "peak_loss": max(loss for _, loss in curve) if curve else None,
            "val_loss": val[-1]["loss"] if val else None, "max_logit_per_step": probe.per_step,
            "max_logit": max(probe.per_step) if probe.per_step else None, "seconds": seconds}


def draw(rows: list[dict], path: str) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    lrs = sorted({r["lr"] for r in rows})
    colours = {lr: plt.cm.viridis(i / max(len(lrs) - 1, 1)) for i, lr in enumerate(lrs)}
    for r in rows:
        if r["seed"] != min(x["seed"] for x in rows):
            continue
        style = dict(color=colours[r["lr"]], ls="-" if r["qk_norm"] else "--", lw=1.2)
        label = f"lr {r['lr']:g}" if r["qk_norm"] else None
        axes[0].plot(range(1, len(r["max_logit_per_step"]) + 1), r["max_logit_per_step"], label=label, **style)
        axes[1].plot(*zip(*r["loss_curve"]), **style)
    axes[0].set(xlabel="step", ylabel="largest |attention logit|", yscale="log",
                title="attention logits (solid: QK-norm, dashed: none)")
    axes[1].set(xlabel="step", ylabel="training loss (10-step means)", yscale="log", title="loss")
    axes[0].legend(fontsize=8)
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--lrs", type=float, nargs="+", default=list(LRS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--quick", action="store_true", help="30 steps at two learning rates: a smoke run")
    parser.add_argument("--out", default=None, help=f"results file (default benchmarks/results/{NAME}.json)")
    parser.add_argument("--figure", default=None, help="figure file ('' for none; default beside the results)")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.warmup, args.lrs = 30, 5, [1e-3, 1e-1]
    out = Path(args.out) if args.out else RESULTS / f"{NAME}.json"
    precision = choose_precision("auto", torch.device("cpu")).describe()
    protocol = {"preset": PRESET, "steps": args.steps, "warmup": args.warmup, "precision": precision}
    partial = out.with_suffix(".partial.json")  # rows so far; the results file is written complete, once
    rows = KeyedRows(partial if partial.is_file() else out, protocol)
    keys = [{"qk_norm": qk, "lr": lr, "seed": s} for s in args.seeds for lr in args.lrs for qk in (True, False)]
    for key in keys:
        rows.get_or_compute(key, lambda key=key: one_run(key["qk_norm"], key["lr"], key["seed"], args.steps,
                                                         args.warmup))
        atomic_write_json(partial, {**protocol, "rows": rows.pending(keys)})  # a kill loses no finished row
        print(f"{key}: {rows.rows[-1]['final_loss']} max logit {rows.rows[-1]['max_logit']}", flush=True)
    for r in rows.rows:  # rows of an earlier rule of stability: the table judges from the curves
        r.pop("stable", None)
    write_results(NAME, {**protocol, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                         "diverged_ratio": DIVERGED_RATIO,
                         "model": "DiT-tiny/2 (4 blocks, width 64, 4 heads), class-conditional, rotary, digits 8x8",
                         "batch_size": 64, "grad_clip": 1.0, "rows": rows.rows}, out)
    partial.unlink(missing_ok=True)
    figure = figure_path(args.figure, args.out, "sd3-qk-norm.png")
    if figure:
        draw(rows.rows, figure)


if __name__ == "__main__":
    main()
