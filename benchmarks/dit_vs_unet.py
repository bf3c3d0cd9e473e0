"""DiT against the U-Net on class-conditional MNIST at equal parameters and equal training time.

``configs/dit-mnist.yaml`` (DiT ``small``: 6 blocks of width 128, patch 2, 2-D RoPE, QK-norm, adaLN-Zero; 1.87 M
parameters) and ``configs/fm-mnist-class-cpu.yaml`` (the U-Net: 1.76 M) share everything else: data, linear path,
logit-normal times, label dropout 0.1, batch 64, AdamW 5e-4 with warm-up and cosine decay, EMA, DPM-Solver++(2M)
with 20 steps and guidance 2. Each gets ``--minutes`` of training on one thread: the script first times
``--probe`` steps of each (interleaved, after one warm-up step) and gives each run the number of steps that fill
that time at its own pace (the cosine schedule then spans the run). Both runs train at the same time, one per
core, so the machine's load hits both alike; the engine's own training seconds are reported beside.

Then ``flowforge eval`` scores each (``--n`` samples: Fréchet distance, kernel distance, precision / recall and
label accuracy in the pinned MNIST classifier's features; bits/dim of the unconditional field's ODE likelihood on
the first ``--n-likelihood`` test images), and ``flowforge compare`` writes the table and figure to
``benchmarks/results/dit_vs_unet_mnist.{md,csv,json,png}``.

    .venv/bin/python -m benchmarks.dit_vs_unet --minutes 25          # ~25 min of training + ~15 min of scoring
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import torch

from flowforge.config import load_config
from flowforge.data import load_dataset
from flowforge.models import build_model

from benchmarks.harness import RESULTS, ROOT

PRESETS = ("fm-mnist-class-cpu", "dit-mnist")
FLOWFORGE = [sys.executable, "-m", "flowforge.cli"]


def step_seconds(presets: tuple[str, ...], probe: int) -> dict[str, float]:
    """Seconds per training step of each preset's network (fp32, fused AdamW), interleaved, one thread."""
    torch.set_num_threads(1)
    steppers = {}
    for preset in presets:
        cfg = load_config(ROOT / "configs" / f"{preset}.yaml", ["train.precision=fp32"])
        dataset = load_dataset(cfg.data)
        torch.manual_seed(0)
        model = build_model(cfg.model, dataset.spec())
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr, fused=True)
        x, y = dataset.train[:cfg.train.batch_size], dataset.train_labels[:cfg.train.batch_size]

        def step(model=model, opt=opt, x=x, y=y) -> None:
            model.loss(x, labels=y).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        step()  # warm-up
        steppers[preset] = step
    times: dict[str, list[float]] = {p: [] for p in presets}
    for _ in range(probe):
        for preset, step in steppers.items():
            t0 = time.perf_counter()
            step()
            times[preset].append(time.perf_counter() - t0)
    return {p: sorted(v)[len(v) // 2] for p, v in times.items()}


def run_all(commands: list[list[str]]) -> None:
    """Run the commands side by side, one thread each; fail if any fails."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen(c, env=env, cwd=ROOT) for c in commands]
    codes = [p.wait() for p in procs]
    if any(codes):
        raise SystemExit(f"failed ({codes}): {commands}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=25.0, help="training time of each run")
    ap.add_argument("--probe", type=int, default=5, help="timed steps per network before training")
    ap.add_argument("--n", type=int, default=500, help="samples scored per run")
    ap.add_argument("--n-likelihood", type=int, default=50, help="test images scored by the ODE likelihood")
    ap.add_argument("--out-dir", default="runs/dit-vs-unet")
    ap.add_argument("--out", default=str(RESULTS / "dit_vs_unet_mnist"), help="flowforge compare's output stem")
    args = ap.parse_args(argv)
    out_dir = ROOT / args.out_dir  # relative to the repository root, where the training subprocesses run
    runs = {p: out_dir / p for p in PRESETS}
    todo = [p for p in PRESETS if not (runs[p] / "checkpoints").is_dir()]
    if todo:
        pace = step_seconds(tuple(todo), args.probe)
        for preset, seconds in pace.items():
            print(f"{preset}: {seconds:.2f} s / step -> {int(args.minutes * 60 / seconds)} steps", flush=True)
        run_all([[*FLOWFORGE, "train", f"configs/{p}.yaml", f"run.dir={runs[p]}",
                  f"train.steps={int(args.minutes * 60 / pace[p])}", "train.precision=fp32", "train.sample_every=0"]
                 for p in todo])
    run_all([[*FLOWFORGE, "eval", str(runs[p]), "--n", str(args.n), "--n-likelihood", str(args.n_likelihood)]
             for p in PRESETS])
    subprocess.run([*FLOWFORGE, "compare", *map(str, runs.values()), "--out", args.out], check=True, cwd=ROOT)


if __name__ == "__main__":
    main()
