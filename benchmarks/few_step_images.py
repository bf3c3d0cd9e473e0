r"""Few-step generation on an image data set, scored in its pinned classifier's features: a trained 1-rectified flow
(``--parent``, by default ``runs/fm-digits`` from ``configs/fm-digits.yaml``), its reflow (2-RF), the one-step
distillation of the 2-RF, the reflow of the 2-RF (3-RF), at 1, 2, 4 and 100 Euler steps; and MeanFlow
(``configs/meanflow-<data>.yaml``: the same U-Net trained from scratch on the average velocity), at 1, 2, 4 and 100
of its own average-velocity steps (``mean-flow``) and at as many Euler steps of its instantaneous field (r = t).

The runs are made as ``flowforge reflow`` makes them (:func:`flowforge.runs.pairs.reflow_config`); the pairs are
drawn with ``--pair-sampler`` / ``--pair-steps`` (default Heun, 25 steps: dopri5 took 134 s per 500 digits on an
AVX2 CPU). Each model draws ``--n`` samples per NFE from the same noise;
:func:`flowforge.runs.image_eval.image_scores` scores them against the test split (Fréchet distance ``fd`` in the
data set's CNN features, precision, recall) beside the floor (``--n`` training images) and a Gaussian with the
training data's mean and covariance. Results go to ``benchmarks/results/few_step_<data>.json``, the one-step grid to
``docs/few-step-<data>.png``.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/few_step_images.py --meanflow-steps 1500
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/few_step_images.py --parent runs/fm-mnist-cpu --pairs 3000 \
        --pair-sampler dpm++2m --pair-steps 16 --reflow-steps 1200 --distill-steps 600 \
        --meanflow-steps 1200 --n 500 --child-nfes 1 2 4 100 --straightness-n 100
"""

from __future__ import annotations

import argparse
import fcntl
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, docs_figure, machine, now, write_results  # noqa: E402

from flowforge.config import load_config  # noqa: E402
from flowforge.data import load_dataset  # noqa: E402
from flowforge.metrics import EXTRACTORS, default_extractor, matched_gaussian  # noqa: E402
from flowforge.runs import (atomic_write_text, latest_checkpoint, load_run, read_config, read_metrics,  # noqa: E402
                            read_state)
from flowforge.runs.evaluate import path_straightness  # noqa: E402
from flowforge.runs.image_eval import image_scores  # noqa: E402
from flowforge.runs.pairs import reflow_config, weights_sha256  # noqa: E402
from flowforge.train import train  # noqa: E402


ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parent", default="runs/fm-digits")
    ap.add_argument("--out-dir", default=None, help="where the runs trained here go (default runs/few-step-<data>)")
    ap.add_argument("--pairs", type=int, default=6000)
    ap.add_argument("--pair-sampler", default="heun")
    ap.add_argument("--pair-steps", type=int, default=25)
    ap.add_argument("--reflow-steps", type=int, default=1500)
    ap.add_argument("--distill-steps", type=int, default=1000)
    ap.add_argument("--no-distill", action="store_true", help="skip the one-step distillation")
    ap.add_argument("--no-rf3", action="store_true", help="skip the 3-rectified flow")
    ap.add_argument("--meanflow-steps", type=int, default=None,
                    help="train.steps of the MeanFlow run (default: the preset's); 0 skips MeanFlow")
    ap.add_argument("--meanflow-config", default=None,
                    help="the MeanFlow preset (default configs/meanflow-<data>.yaml)")
    ap.add_argument("--nfes", type=int, nargs="+", default=[1, 2, 4, 100])
    ap.add_argument("--child-nfes", type=int, nargs="+", default=None,
                    help="NFEs for the models trained here (default --nfes); the parent is always scored at --nfes, "
                         "so a large NFE can be kept for the 1-RF reference alone where sampling is costly")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--straightness-n", type=int, default=500,
                    help="paths in each model's straightness estimate (25 RK4 steps, 100 network passes a path)")
    ap.add_argument("--seed", type=int, default=12345)
    ap.add_argument("--out", default=None, help="results JSON (default benchmarks/results/few_step_<data>.json)")
    ap.add_argument("--train-only", action="store_true",
                    help="train the missing runs and stop before scoring: once the 2-RF exists (every call starts "
                         "with it), two calls that train different runs (say --no-distill --no-rf3 and "
                         "--meanflow-steps 0) can share the two cores, and a third call scores them all")
    ap.add_argument("--rescore", action="store_true",
                    help="score every model afresh; by default a row the results file already has for the same "
                         "weights (sha256), --n and --seed (a straightness: --straightness-n) is kept, so a call "
                         "with one more NFE scores only that NFE")
    ap.add_argument("--grid", type=int, default=16, help="one-step samples per model in the figure")
    ap.add_argument("--figure", default=None,
                    help="the one-step samples' figure (default docs/few-step-<data>.png, but only with the "
                         "default --out, so a trial run never replaces the docs' figure; '' for none)")
    args = ap.parse_args(argv)
    child_nfes = args.child_nfes or args.nfes
    if min(args.nfes + child_nfes) < 1:
        ap.error(f"--nfes {args.nfes} --child-nfes {child_nfes}: every NFE must be at least 1")
    if args.meanflow_steps is not None and args.meanflow_steps < 0:
        ap.error(f"--meanflow-steps {args.meanflow_steps}: give a step count, or 0 to skip MeanFlow")
    if 1 in args.nfes + child_nfes and args.grid < 1:
        ap.error(f"--grid {args.grid}: the figure needs at least one sample per model")
    parent = ROOT / args.parent  # relative paths from the repository root
    if not (parent / "checkpoints").is_dir():
        ap.error(f"--parent {parent}: no trained run there; train it first (`flowforge train configs/fm-digits.yaml` "
                 f"for the default) from the repository root")
    data = read_config(parent).data.name
    args.figure = docs_figure(args.figure, args.out, f"few-step-{data}.png")
    out = ROOT / (args.out_dir or f"runs/few-step-{data}")
    meanflow_config = ROOT / (args.meanflow_config or f"configs/meanflow-{data}.yaml")
    pair_settings = [f"reflow.sampler={args.pair_sampler}", f"reflow.steps={args.pair_steps}"]
    runs = {"1-RF": parent, "2-RF": out / "rf2", "2-RF distilled": out / "rf2-distill1"}
    # wall-clock seconds of each training made here, pairs included, kept beside the runs so that a later call that
    # only scores them (or one resumed after a crash) still reports what they cost
    seconds_file = out / "seconds.json"

    def read_seconds() -> dict[str, float]:
        return json.loads(seconds_file.read_text()) if seconds_file.is_file() else {}

    def record_seconds(name: str, t0: float) -> None:
        took = time.perf_counter() - t0
        out.mkdir(parents=True, exist_ok=True)
        # another call (--train-only) may record its own run meanwhile: read and write under a lock
        with open(out / "seconds.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            atomic_write_text(seconds_file, json.dumps({**read_seconds(), name: took}, indent=1))

    def trained(name: str, steps: int | None) -> bool:
        """Whether ``runs[name]`` exists; an existing run must have the step count asked for (the results would
        otherwise describe another budget)."""
        if not (runs[name] / "checkpoints").is_dir():
            return False
        had = read_config(runs[name]).train.steps
        if steps is not None and had != steps:
            ap.error(f"{runs[name]} was trained for {had} steps, not {steps}: delete it or pass another --out-dir")
        newest = latest_checkpoint(runs[name])
        reached = read_state(newest)["step"] if newest else 0
        if reached < had:
            ap.error(f"{runs[name]} is unfinished (its last checkpoint is step {reached} of {had}): let its training "
                     f"finish (`flowforge train --resume {runs[name]}/config.yaml`) or delete it")
        return True

    def reflow(name: str, parent_dir: Path, steps: int, distill: int = 0) -> None:
        if trained(name, steps):
            had = read_config(runs[name]).reflow
            asked = {"--pairs": (had.pairs, args.pairs), "--pair-sampler": (had.sampler, args.pair_sampler),
                     "--pair-steps": (had.steps, args.pair_steps)}
            for flag, (was, want) in asked.items():
                if was != want:
                    ap.error(f"{runs[name]} was trained on pairs with {flag[2:]} {was}, not {flag} {want}: delete it "
                             f"or pass another --out-dir")
            return
        t0 = time.perf_counter()
        train(reflow_config(parent_dir, pairs=args.pairs, distill=distill,
                            overrides=[f"run.dir={runs[name]}", f"train.steps={steps}", *pair_settings]))
        record_seconds(name, t0)  # pairs and training

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
        if not meanflow_config.is_file():
            ap.error(f"no MeanFlow preset {meanflow_config}: pass --meanflow-config, or --meanflow-steps 0 to skip it")
        preset_steps = load_config(meanflow_config).train.steps
        if not trained("MeanFlow", args.meanflow_steps or preset_steps):
            steps = [] if args.meanflow_steps is None else [f"train.steps={args.meanflow_steps}"]
            t0 = time.perf_counter()
            train(load_config(meanflow_config, [f"run.dir={runs['MeanFlow']}", *steps]))
            record_seconds("MeanFlow", t0)
    if args.train_only:
        print(f"trained: {', '.join(f'{name} ({path})' for name, path in runs.items())}; --train-only: not scored")
        return
    seconds = read_seconds()
    dataset = load_dataset(load_run(parent).config.data)
    gaussian = matched_gaussian(dataset.train, args.n, seed=args.seed)
    results = Path(args.out) if args.out else RESULTS / f"few_step_{data}.json"
    protocol = {"data": dataset.name, "n": args.n, "seed": args.seed}  # what a kept FD row must share
    try:
        previous = json.loads(results.read_text()) if results.is_file() and not args.rescore else {}
    except json.JSONDecodeError:
        previous = {}  # a results file cut short: score afresh
    if any(previous.get(k) != v for k, v in protocol.items()):
        previous = {}  # another protocol (or a record from before the seed was kept): nothing to reuse
    extractor = default_extractor(dataset.name, dataset.shape)
    extractor_sha = EXTRACTORS[extractor].weights.sha256 if extractor else None
    figure_n = min(args.grid, args.n)
    record = {**protocol, "straightness_n": args.straightness_n, "pairs": args.pairs,
              "pair_sampler": args.pair_sampler, "pair_steps": args.pair_steps,
              "cpu_capability": machine().get("cpu_capability")}
    rows, one_step = [], {}
    for done, (name, run_dir) in enumerate(runs.items()):
        if done:  # after each model, so that a crash or a kill loses at most one model's new rows
            later = set(list(runs)[done:])
            write_results(f"few_step_{data}", {**record, "rows": rows + [r for r in previous.get("rows", [])
                                                                        if r["model"] in later]}, results)
        run = load_run(run_dir)
        weights = weights_sha256(run)
        noise = torch.randn((args.n, *run.model.shape), generator=torch.Generator().manual_seed(args.seed))
        mean_flow = run.config.model.target == "mean-velocity"
        nfes = args.nfes if run_dir == parent else child_nfes
        # MeanFlow: its own average-velocity steps, and Euler on its instantaneous field (r = t) beside them
        grids = [(sampler, nfe) for sampler in (["mean-flow", "euler"] if mean_flow else ["euler"]) for nfe in nfes]
        # rows these weights already have: an FD row scored in the same extractor, a straightness of as many paths
        same = [{**r, "scored": r.get("scored", previous["date"])} for r in previous.get("rows", [])
                if r["model"] == name and r.get("weights_sha256") == weights]
        kept = {(r["sampler"], r["nfe"]): r for r in same
                if "nfe" in r and r["scores"]["model"].get("weights_sha256") == extractor_sha}
        kept_straight = next((r for r in same if "straightness" in r and
                              r.get("straightness_n", previous.get("straightness_n")) == args.straightness_n), None)
        if kept or kept_straight:
            print(f"{name}: weights {weights[:12]} keep {len(set(kept) & set(grids))} of {len(grids)} scored "
                  f"rows{' and the straightness' if kept_straight else ''}", flush=True)
        for sampler, nfe in grids:
            if (sampler, nfe) in kept:
                rows.append(kept[sampler, nfe])
                if nfe == 1 and name not in one_step:  # redraw only the figure's samples
                    one_step[name] = run.model.sample(figure_n, sampler=sampler, steps=1, grid="uniform",
                                                      noise=noise[:figure_n])
                continue
            t0 = time.perf_counter()
            x = run.model.sample(args.n, sampler=sampler, steps=nfe, grid="uniform", noise=noise)
            took = time.perf_counter() - t0
            if nfe == 1 and name not in one_step:  # MeanFlow: its own one step, not the instantaneous field's
                one_step[name] = x[:figure_n]
            scores = image_scores(dataset, x, gaussian, labels=None, seed=args.seed)
            rows.append({"model": name, "weights_sha256": weights, "scored": now(), "sampler": sampler,
                         "nfe": nfe, "sample_seconds": took,
                         "scores": {k: scores[k] for k in ("model", "noise_floor", "matched_gaussian")}})
            print(json.dumps({"model": name, "sampler": sampler, "nfe": nfe, "fd": scores["model"]["fd"],
                              "floor": scores["noise_floor"]["fd"], "seconds": took}), flush=True)
        if kept_straight:
            rows.append({**kept_straight, "total_seconds": seconds.get(name, kept_straight["total_seconds"])})
            continue  # the cost as now known
        train_s = [r["seconds"] for r in read_metrics(run_dir) if "seconds" in r and "kind" not in r]
        straight = path_straightness(run.model, args.straightness_n, 25, seed=1)
        rows.append({"model": name, "weights_sha256": weights, "scored": now(), "straightness": straight["value"],
                     "straightness_stderr": straight["stderr"], "straightness_n": args.straightness_n,
                     "steps": run.step, "train_seconds": train_s[-1] if train_s else None,
                     "total_seconds": seconds.get(name)})
        print(json.dumps(rows[-1]), flush=True)
    print(f"wrote {write_results(f'few_step_{data}', {**record, 'rows': rows}, results)}")
    if args.figure and not one_step:
        print("no figure: it shows the one-step samples and neither --nfes nor --child-nfes has 1")
    elif args.figure:
        grid_figure(one_step, dataset.value_range, Path(args.figure), dataset.name)
        print(f"wrote {args.figure}")


def grid_figure(samples: dict[str, torch.Tensor], value_range, path: Path, data: str) -> None:
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
    fig.suptitle(f"one network evaluation per sample ({data}, same noise)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
