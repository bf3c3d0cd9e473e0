"""Few-step generation on scikit-learn digits (8x8), scored in the pinned digits classifier's features: the
1-rectified flow ``runs/fm-digits`` (``configs/fm-digits.yaml``, a U-Net), its reflow (2-RF), the one-step
distillation of the 2-RF, the reflow of the 2-RF (3-RF), at 1, 2, 4 and 100 Euler steps; and MeanFlow
(``configs/meanflow-digits.yaml``: the same U-Net trained from scratch on the average velocity), at 1, 2, 4 and 100
of its own average-velocity steps (``mean-flow``) and at 100 Euler steps of its instantaneous field (r = t).

The runs are made as ``flowforge reflow`` makes them (:func:`flowforge.runs.pairs.reflow_config`); the pairs are
drawn with ``--pair-sampler`` / ``--pair-steps`` (default Heun, 25 steps: dopri5 took 134 s per 500 digits on
this CPU). Each model draws ``--n`` samples per NFE from the same noise; :func:`flowforge.runs.image_eval.image_scores`
scores them against the test split (Fréchet distance ``fd`` in the digits CNN's features, precision, recall)
beside the floor (``--n`` training images) and a Gaussian with the training data's mean and covariance.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/few_step_digits.py --meanflow-steps 1500
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import docs_figure, machine, write_results  # noqa: E402

from flowforge.config import load_config  # noqa: E402
from flowforge.data import load_dataset  # noqa: E402
from flowforge.metrics import matched_gaussian  # noqa: E402
from flowforge.runs import load_run, read_config, read_metrics  # noqa: E402
from flowforge.runs.evaluate import path_straightness  # noqa: E402
from flowforge.runs.image_eval import image_scores  # noqa: E402
from flowforge.runs.pairs import reflow_config  # noqa: E402
from flowforge.train import train  # noqa: E402


ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parent", default="runs/fm-digits")
    ap.add_argument("--out-dir", default="runs/few-step-digits")
    ap.add_argument("--pairs", type=int, default=6000)
    ap.add_argument("--pair-sampler", default="heun")
    ap.add_argument("--pair-steps", type=int, default=25)
    ap.add_argument("--reflow-steps", type=int, default=1500)
    ap.add_argument("--distill-steps", type=int, default=1000)
    ap.add_argument("--no-distill", action="store_true", help="skip the one-step distillation")
    ap.add_argument("--no-rf3", action="store_true", help="skip the 3-rectified flow")
    ap.add_argument("--meanflow-steps", type=int, default=None,
                    help="train.steps of the MeanFlow run (default: the preset's); 0 skips MeanFlow")
    ap.add_argument("--nfes", type=int, nargs="+", default=[1, 2, 4, 100])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=12345)
    ap.add_argument("--out", default=None, help="results JSON (default benchmarks/results/few_step_digits.json)")
    ap.add_argument("--grid", type=int, default=16, help="one-step samples per model in the figure")
    ap.add_argument("--figure", default=None,
                    help="the one-step samples' figure (default docs/few-step-digits.png, but only with the "
                         "default --out, so a trial run never replaces the docs' figure; '' for none)")
    args = ap.parse_args(argv)
    args.figure = docs_figure(args.figure, args.out, "few-step-digits.png")
    if min(args.nfes) < 1:
        ap.error(f"--nfes {args.nfes}: every NFE must be at least 1")
    if args.meanflow_steps is not None and args.meanflow_steps < 0:
        ap.error(f"--meanflow-steps {args.meanflow_steps}: give a step count, or 0 to skip MeanFlow")
    if 1 in args.nfes and args.grid < 1:
        ap.error(f"--grid {args.grid}: the figure needs at least one sample per model")
    out, parent = ROOT / args.out_dir, ROOT / args.parent  # relative paths from the repository root
    if not (parent / "checkpoints").is_dir():
        ap.error(f"--parent {parent}: no trained run there; train it first with "
                 f"`flowforge train configs/fm-digits.yaml` from the repository root")
    pair_settings = [f"reflow.sampler={args.pair_sampler}", f"reflow.steps={args.pair_steps}"]
    runs = {"1-RF": parent, "2-RF": out / "rf2", "2-RF distilled": out / "rf2-distill1"}
    seconds = {}

    def trained(name: str, steps: int | None) -> bool:
        """Whether ``runs[name]`` exists; an existing run must have the step count asked for (the results would
        otherwise describe another budget)."""
        if not (runs[name] / "checkpoints").is_dir():
            return False
        had = read_config(runs[name]).train.steps
        if steps is not None and had != steps:
            ap.error(f"{runs[name]} was trained for {had} steps, not {steps}: delete it or pass another --out-dir")
        return True

    def reflow(name: str, parent_dir: Path, steps: int, distill: int = 0) -> None:
        if trained(name, steps):
            pairs = read_config(runs[name]).reflow.pairs
            if pairs != args.pairs:
                ap.error(f"{runs[name]} was trained on {pairs} pairs, not --pairs {args.pairs}: delete it or pass "
                         f"another --out-dir")
            return
        t0 = time.perf_counter()
        train(reflow_config(parent_dir, pairs=args.pairs, distill=distill,
                            overrides=[f"run.dir={runs[name]}", f"train.steps={steps}", *pair_settings]))
        seconds[name] = time.perf_counter() - t0  # pairs and training

    reflow("2-RF", parent, args.reflow_steps)
    if args.no_distill:
        del runs["2-RF distilled"]
    else:
        reflow("2-RF distilled", runs["2-RF"], args.distill_steps, distill=1)
    if not args.no_rf3:
        runs["3-RF"] = out / "rf3"
        reflow("3-RF", runs["2-RF"], args.reflow_steps)
    if args.meanflow_steps != 0:
        runs["MeanFlow"] = out / "meanflow"
        preset_steps = load_config(ROOT / "configs/meanflow-digits.yaml").train.steps
        if not trained("MeanFlow", args.meanflow_steps or preset_steps):
            steps = [] if args.meanflow_steps is None else [f"train.steps={args.meanflow_steps}"]
            t0 = time.perf_counter()
            train(load_config(ROOT / "configs/meanflow-digits.yaml", [f"run.dir={runs['MeanFlow']}", *steps]))
            seconds["MeanFlow"] = time.perf_counter() - t0
    dataset = load_dataset(load_run(parent).config.data)
    gaussian = matched_gaussian(dataset.train, args.n, seed=args.seed)
    rows, one_step = [], {}
    for name, run_dir in runs.items():
        run = load_run(run_dir)
        noise = torch.randn((args.n, *run.model.shape), generator=torch.Generator().manual_seed(args.seed))
        mean_flow = run.config.model.target == "mean-velocity"
        grids = [("mean-flow", nfe) for nfe in args.nfes] + [("euler", 100)] if mean_flow else \
            [("euler", nfe) for nfe in args.nfes]
        for sampler, nfe in grids:
            t0 = time.perf_counter()
            x = run.model.sample(args.n, sampler=sampler, steps=nfe, grid="uniform", noise=noise)
            took = time.perf_counter() - t0
            if nfe == 1:
                one_step[name] = x[:args.grid]
            scores = image_scores(dataset, x, gaussian, labels=None, seed=args.seed)
            rows.append({"model": name, "sampler": sampler, "nfe": nfe, "sample_seconds": took,
                         "scores": {k: scores[k] for k in ("model", "noise_floor", "matched_gaussian")}})
            print(json.dumps({"model": name, "sampler": sampler, "nfe": nfe, "fd": scores["model"]["fd"],
                              "floor": scores["noise_floor"]["fd"], "seconds": took}), flush=True)
        train_s = [r["seconds"] for r in read_metrics(run_dir) if "seconds" in r and "kind" not in r]
        rows.append({"model": name, "straightness": path_straightness(run.model, 500, 25, seed=1)["value"],
                     "steps": run.step, "train_seconds": train_s[-1] if train_s else None,
                     "total_seconds": seconds.get(name)})
        print(json.dumps(rows[-1]), flush=True)
    record = {"data": dataset.name, "n": args.n, "pairs": args.pairs, "pair_sampler": args.pair_sampler,
              "pair_steps": args.pair_steps, "rows": rows, "cpu_capability": machine().get("cpu_capability")}
    print(f"wrote {write_results('few_step_digits', record, args.out)}")
    if args.figure and not one_step:
        print("no figure: it shows the one-step samples and --nfes has no 1")
    elif args.figure:
        grid_figure(one_step, dataset.value_range, Path(args.figure))
        print(f"wrote {args.figure}")


def grid_figure(samples: dict[str, torch.Tensor], value_range, path: Path) -> None:
    """One row of one-step samples per model."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    lo, hi = value_range
    n = max(len(x) for x in samples.values())
    fig, axes = plt.subplots(len(samples), 1, figsize=(n * 0.45 + 1.6, len(samples) * 0.62 + 0.2), squeeze=False)
    for ax, (name, x) in zip(axes[:, 0], samples.items()):
        x = ((x.clamp(lo, hi) - lo) / (hi - lo))[:, 0]  # (n, H, W) in [0, 1]
        x = torch.nn.functional.pad(x, (0, 1), value=0.5)  # a grey column between samples
        ax.imshow(torch.cat(list(x), dim=1).numpy(), cmap="gray", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle("one network evaluation per sample (digits, same noise)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
