r"""Few-step generation on an image data set, scored in its pinned classifier's features: a trained 1-rectified flow
(``--parent``, by default ``runs/fm-digits`` from ``configs/fm-digits.yaml``), its reflow (2-RF), the one-step
distillation of the 2-RF, the reflow of the 2-RF (3-RF), at 1, 2, 4 and 100 Euler steps; and MeanFlow
(``configs/meanflow-<data>.yaml``: the same U-Net trained from scratch on the average velocity), at 1, 2, 4 and 100
of its own average-velocity steps (``mean-flow``) and at as many Euler steps of its instantaneous field (r = t).

The runs are made as ``flowforge reflow`` makes them (:func:`flowforge.jobs.reflow_config`); the pairs are
drawn with ``--pair-sampler`` / ``--pair-steps`` (default Heun, 25 steps: dopri5 took 134 s per 500 digits on an
AVX2 CPU). Each model draws ``--n`` samples per NFE from the same noise;
:func:`flowforge.jobs.image_eval.image_scores` scores them against the test split (Fréchet distance ``fd`` in the
data set's CNN features, precision, recall) beside the floor (``--n`` training images) and a Gaussian with the
training data's mean and covariance. Results go to ``benchmarks/results/few_step_<data>.json``, the one-step grid
beside them (``benchmarks/results/few-step-<data>.png``; ``make docs-figures`` copies it into ``docs/``).

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.few_step_images --meanflow-steps 1500
    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.few_step_images --parent runs/fm-mnist-cpu --pairs 3000 \
        --pair-sampler dpm++2m --pair-steps 16 --reflow-steps 1200 --distill-steps 600 \
        --meanflow-steps 1200 --n 500 --child-nfes 1 2 4 100 --straightness-n 100
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch


from flowforge.config import load_config
from flowforge.data import load_dataset
from flowforge.jobs import reflow_config
from flowforge.jobs.evaluate import path_straightness
from flowforge.jobs.image_eval import image_scores
from flowforge.metrics import EXTRACTORS, default_extractor, matched_gaussian
from flowforge.runs import latest_checkpoint, load_run, read_config, read_metrics, read_state
from flowforge.runs.pairs import weights_sha256
from flowforge.train import train

from benchmarks.harness import RESULTS, ROOT, KeyedRows, SecondsLedger, figure_path, machine, now, write_results


def parse_args(argv: list[str] | None) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
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
                    help="the one-step samples' figure (default few-step-<data>.png beside --out; '' for none; "
                         "`make docs-figures` copies the default one into docs/)")
    args = ap.parse_args(argv)
    args.child_nfes = args.child_nfes or args.nfes
    if min(args.nfes + args.child_nfes) < 1:
        ap.error(f"--nfes {args.nfes} --child-nfes {args.child_nfes}: every NFE must be at least 1")
    if args.meanflow_steps is not None and args.meanflow_steps < 0:
        ap.error(f"--meanflow-steps {args.meanflow_steps}: give a step count, or 0 to skip MeanFlow")
    if 1 in args.nfes + args.child_nfes and args.grid < 1:
        ap.error(f"--grid {args.grid}: the figure needs at least one sample per model")
    return ap, args


class Chain:
    """The runs this benchmark trains from ``--parent`` (2-RF, its distillation, 3-RF, MeanFlow), each trained only
    when missing; the seconds each training took (pairs included) go to the ledger ``<out-dir>/seconds.json``."""

    def __init__(self, ap: argparse.ArgumentParser, args: argparse.Namespace, parent: Path, out: Path):
        self.ap, self.args, self.out = ap, args, out
        self.runs = {"1-RF": parent, "2-RF": out / "rf2", "2-RF distilled": out / "rf2-distill1"}
        self.ledger = SecondsLedger(out / "seconds.json")

    def trained(self, name: str, steps: int | None) -> bool:
        """Whether ``runs[name]`` exists; an existing run must have the step count asked for (the results would
        otherwise describe another budget)."""
        run_dir = self.runs[name]
        if not (run_dir / "checkpoints").is_dir():
            return False
        had = read_config(run_dir).train.steps
        if steps is not None and had != steps:
            self.ap.error(f"{run_dir} was trained for {had} steps, not {steps}: delete it or pass another --out-dir")
        newest = latest_checkpoint(run_dir)
        reached = read_state(newest)["step"] if newest else 0
        if reached < had:
            self.ap.error(f"{run_dir} is unfinished (its last checkpoint is step {reached} of {had}): let its "
                          f"training finish (`flowforge train --resume {run_dir}/config.yaml`) or delete it")
        return True

    def reflow(self, name: str, parent_dir: Path, steps: int, distill: int = 0) -> None:
        args = self.args
        if self.trained(name, steps):
            had = read_config(self.runs[name]).reflow
            asked = {"--pairs": (had.pairs, args.pairs), "--pair-sampler": (had.sampler, args.pair_sampler),
                     "--pair-steps": (had.steps, args.pair_steps)}
            for flag, (was, want) in asked.items():
                if was != want:
                    self.ap.error(f"{self.runs[name]} was trained on pairs with {flag[2:]} {was}, not {flag} {want}: "
                                  f"delete it or pass another --out-dir")
            return
        overrides = [f"run.dir={self.runs[name]}", f"train.steps={steps}", f"reflow.sampler={args.pair_sampler}",
                     f"reflow.steps={args.pair_steps}"]
        self.ledger.timed(name, lambda: train(reflow_config(parent_dir, pairs=args.pairs, distill=distill,
                                                            overrides=overrides)))  # pairs and training

    def meanflow(self, config: Path) -> None:
        args = self.args
        self.runs["MeanFlow"] = self.out / "meanflow"
        if not config.is_file():
            self.ap.error(f"no MeanFlow preset {config}: pass --meanflow-config, or --meanflow-steps 0 to skip it")
        if not self.trained("MeanFlow", args.meanflow_steps or load_config(config).train.steps):
            steps = [] if args.meanflow_steps is None else [f"train.steps={args.meanflow_steps}"]
            # independent pairs, as the tables were measured (configs/meanflow-digits.yaml pairs by minibatch OT)
            self.ledger.timed("MeanFlow", lambda: train(load_config(config, [f"run.dir={self.runs['MeanFlow']}",
                                                                             "model.ot_coupling=false", *steps])))

    def train_all(self, meanflow_config: Path) -> dict[str, Path]:
        args = self.args
        self.reflow("2-RF", self.runs["1-RF"], args.reflow_steps)
        if args.no_distill:
            del self.runs["2-RF distilled"]
        else:
            self.reflow("2-RF distilled", self.runs["2-RF"], args.distill_steps, distill=1)
        if not args.no_rf3:
            self.runs["3-RF"] = self.out / "rf3"
            self.reflow("3-RF", self.runs["2-RF"], args.reflow_steps)
        if args.meanflow_steps != 0:
            self.meanflow(meanflow_config)
        return self.runs


def legacy_row(file: dict, row: dict) -> dict:
    """A row of a file written before rows kept their own ``scored`` time and straightness sample count."""
    row = {**row, "scored": row.get("scored", file.get("date"))}
    if "straightness" in row:
        row["straightness_n"] = row.get("straightness_n", file.get("straightness_n"))
    return row


def score_samples(ctx: dict, name: str, run, weights: str, sampler: str, nfe: int, noise: torch.Tensor) -> dict:
    """Draw ``--n`` samples of ``run`` at ``nfe`` and score them against the test split: one FD row."""
    t0 = time.perf_counter()
    x = run.model.sample(ctx["n"], sampler=sampler, steps=nfe, grid="uniform", noise=noise)
    took = time.perf_counter() - t0
    if nfe == 1 and name not in ctx["one_step"]:  # MeanFlow: its own one step, not the instantaneous field's
        ctx["one_step"][name] = x[:ctx["figure_n"]]
    scores = image_scores(ctx["dataset"], x, ctx["gaussian"], labels=None, seed=ctx["seed"])
    print(json.dumps({"model": name, "sampler": sampler, "nfe": nfe, "fd": scores["model"]["fd"],
                      "floor": scores["noise_floor"]["fd"], "seconds": took}), flush=True)
    return {"model": name, "weights_sha256": weights, "scored": now(), "sampler": sampler, "nfe": nfe,
            "sample_seconds": took, "scores": {k: scores[k] for k in ("model", "noise_floor", "matched_gaussian")}}


def straightness_row(ctx: dict, name: str, run, run_dir: Path, weights: str) -> dict:
    """The straightness of ``run``'s paths, its training steps and what it cost (the ledger's seconds)."""
    train_s = [r["seconds"] for r in read_metrics(run_dir) if "seconds" in r and "kind" not in r]
    straight = path_straightness(run.model, ctx["straightness_n"], 25, seed=1)
    row = {"model": name, "weights_sha256": weights, "scored": now(), "straightness": straight["value"],
           "straightness_stderr": straight["stderr"], "straightness_n": ctx["straightness_n"], "steps": run.step,
           "train_seconds": train_s[-1] if train_s else None, "total_seconds": ctx["seconds"].get(name)}
    print(json.dumps(row), flush=True)
    return row


def score_model(ctx: dict, rows: KeyedRows, name: str, run_dir: Path, nfes: list[int]) -> None:
    """Every (sampler, NFE) row and the straightness of one model: the rows the results file holds for the same
    weights (and extractor, sample count, seed) are kept, the others computed."""
    run = load_run(run_dir)
    weights = weights_sha256(run)
    noise = torch.randn((ctx["n"], *run.model.shape), generator=torch.Generator().manual_seed(ctx["seed"]))
    # MeanFlow: its own average-velocity steps, and Euler on its instantaneous field (r = t) beside them
    samplers = ["mean-flow", "euler"] if run.config.model.objective == "mean-flow" else ["euler"]
    grids = [(sampler, nfe) for sampler in samplers for nfe in nfes]
    fd_key = {"model": name, "weights_sha256": weights, "scores.model.weights_sha256": ctx["extractor_sha"]}
    straight_key = {"model": name, "weights_sha256": weights, "straightness_n": ctx["straightness_n"]}
    kept_straight = rows.find(straight_key)
    if [r for r in rows.find_all(fd_key) if "nfe" in r] or kept_straight:
        kept = sum(rows.find({**fd_key, "sampler": s, "nfe": k}) is not None for s, k in grids)
        print(f"{name}: weights {weights[:12]} keep {kept} of {len(grids)} scored "
              f"rows{' and the straightness' if kept_straight else ''}", flush=True)
    for sampler, nfe in grids:
        key = {**fd_key, "sampler": sampler, "nfe": nfe}
        if rows.find(key) is not None and nfe == 1 and name not in ctx["one_step"]:  # redraw the figure's samples
            ctx["one_step"][name] = run.model.sample(ctx["figure_n"], sampler=sampler, steps=1, grid="uniform",
                                                     noise=noise[:ctx["figure_n"]])
        rows.get_or_compute(key, lambda s=sampler, k=nfe: score_samples(ctx, name, run, weights, s, k, noise))
    if kept_straight:  # the cost as now known
        rows.rows.append({**kept_straight, "total_seconds": ctx["seconds"].get(name, kept_straight["total_seconds"])})
    else:
        rows.rows.append(straightness_row(ctx, name, run, run_dir, weights))


def main(argv: list[str] | None = None) -> None:
    ap, args = parse_args(argv)
    parent = ROOT / args.parent  # relative paths from the repository root
    if not (parent / "checkpoints").is_dir():
        ap.error(f"--parent {parent}: no trained run there; train it first (`flowforge train configs/fm-digits.yaml` "
                 f"for the default) from the repository root")
    data = read_config(parent).data.name
    args.figure = figure_path(args.figure, args.out, f"few-step-{data}.png")
    chain = Chain(ap, args, parent, ROOT / (args.out_dir or f"runs/few-step-{data}"))
    runs = chain.train_all(ROOT / (args.meanflow_config or f"configs/meanflow-{data}.yaml"))
    if args.train_only:
        print(f"trained: {', '.join(f'{name} ({path})' for name, path in runs.items())}; --train-only: not scored")
        return
    dataset = load_dataset(load_run(parent).config.data)
    results = Path(args.out) if args.out else RESULTS / f"few_step_{data}.json"
    protocol = {"data": dataset.name, "n": args.n, "seed": args.seed}  # what a kept FD row must share
    rows = KeyedRows(results, protocol, fresh=args.rescore, fill=legacy_row)
    extractor = default_extractor(dataset.name, dataset.shape)
    ctx = {"dataset": dataset, "gaussian": matched_gaussian(dataset.train, args.n, seed=args.seed), "n": args.n,
           "seed": args.seed, "straightness_n": args.straightness_n, "seconds": chain.ledger.read(),
           "extractor_sha": EXTRACTORS[extractor].weights.sha256 if extractor else None,
           "figure_n": min(args.grid, args.n), "one_step": {}}
    record = {**protocol, "straightness_n": args.straightness_n, "pairs": args.pairs,
              "pair_sampler": args.pair_sampler, "pair_steps": args.pair_steps,
              "cpu_capability": machine().get("cpu_capability")}
    for done, (name, run_dir) in enumerate(runs.items()):
        if done:  # after each model, so that a crash or a kill loses at most one model's new rows
            later = [{"model": m} for m in list(runs)[done:]]
            write_results(f"few_step_{data}", {**record, "rows": rows.pending(later)}, results)
        score_model(ctx, rows, name, run_dir, args.nfes if run_dir == parent else args.child_nfes)
    print(f"wrote {write_results(f'few_step_{data}', {**record, 'rows': rows.rows}, results)}")
    if args.figure and not ctx["one_step"]:
        print("no figure: it shows the one-step samples and neither --nfes nor --child-nfes has 1")
    elif args.figure:
        grid_figure(ctx["one_step"], dataset.value_range, Path(args.figure), dataset.name)
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
