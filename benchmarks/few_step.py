"""Few-step generation on a 2-D set: the 1-rectified flow, its reflow (2-RF), a one-step distillation of the 2-RF,
and MeanFlow, each scored at 1, 2, 4 and 8 network evaluations (NFE).

The chain, each step through the library as a user runs it:

1. the parent: a trained 1-rectified flow (``--parent``, default ``runs/demo``, which ``make demo`` trains:
   ``configs/rf-checkerboard.yaml``);
2. ``2-RF``: :func:`flowforge.jobs.reflow_config` (what ``flowforge reflow PARENT --pairs P`` trains):
   ``--pairs`` (noise, sample) pairs from the parent's ODE (dopri5, rtol = atol = 1e-5), then ``--reflow-steps``
   steps on them from the parent's weights;
3. ``2-RF distilled``: the same on the 2-RF's pairs with ``--distill 1`` (trained only at t = 1);
4. ``MeanFlow``: ``configs/meanflow-checkerboard.yaml`` trained from scratch for ``--meanflow-steps`` steps, on the
   parent's data set (its toy-set draw: name, size, noise, seed), with independent pairs
   (``model.ot_coupling=false``, the coupling the docs' tables were measured with; the preset's own is minibatch
   OT) and ``--meanflow-overrides`` on top (e.g. the parent's network, or ``model.ot_coupling=true``).

Scores: energy distance (``flowforge.metrics.energy_distance``) of ``--n`` samples against ``--n`` fresh draws of
the true distribution, mean ± std over ``--repeats`` reference draws, beside the noise floor (fresh draws against
fresh draws: what a perfect model scores) — Euler on the uniform grid for every model, and MeanFlow's own sampler
(``mean-flow``) for MeanFlow; and the straightness of each model's ODE (``flowforge eval``'s measure: 1000 paths,
25 RK4 steps). Training time is each run's own (its ``metrics.jsonl``), on the machine below.

    OMP_NUM_THREADS=2 .venv/bin/python -m benchmarks.few_step --parent runs/demo
    # another set: a parent trained on it, the runs and the results file named after it
    .venv/bin/flowforge train configs/rf-moons.yaml run.dir=runs/rf-moons-parent
    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.few_step --parent runs/rf-moons-parent \
        --out-dir runs/few-step-moons --out benchmarks/results/few_step_moons.json \
        --meanflow-overrides model.net.width=128 model.net.depth=3 train.batch_size=256
    # only MeanFlow again (new settings): the other rows stay from the results file; without the parent run on
    # disk, its config names the data
    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.few_step --only MeanFlow --parent runs/rf-moons-parent \
        --parent-config configs/rf-moons.yaml --out-dir runs/few-step-moons-mf \
        --out benchmarks/results/few_step_moons.json
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
from flowforge.metrics import energy_distance
from flowforge.runs import load_run, read_metrics
from flowforge.train import train

from benchmarks.harness import RESULTS, ROOT, machine, mean_std, write_results


def train_seconds(run_dir: Path) -> float:
    """Training seconds of a run, from its metrics log's last training record."""
    seconds = [r["seconds"] for r in read_metrics(run_dir) if "seconds" in r and r.get("kind", "train") == "train"]
    return float(seconds[-1]) if seconds else float("nan")


def score(model, sampler: str, nfe: int, refs: list[torch.Tensor], n: int, seed: int) -> dict:
    x, spent = model.sample(n, sampler=sampler, steps=nfe, grid="uniform", return_nfe=True,
                            generator=torch.Generator().manual_seed(seed))
    values = [float(energy_distance(x, ref)) for ref in refs]
    mean, std = mean_std(values)
    return {"sampler": sampler, "nfe": spent, "energy_distance": mean, "energy_distance_std": std}


def sample_seconds(model, sampler: str, nfe: int, n: int) -> float:
    """Wall-clock seconds to draw ``n`` samples at ``nfe`` steps (one call, after a small warm-up call)."""
    model.sample(16, sampler=sampler, steps=nfe, grid="uniform")
    t0 = time.perf_counter()
    model.sample(n, sampler=sampler, steps=nfe, grid="uniform")
    return time.perf_counter() - t0


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parent", default="runs/demo", help="a trained 1-rectified flow on a 2-D set")
    ap.add_argument("--parent-config", default=None,
                    help="with --only and no parent run on disk: the parent's config, for its data settings")
    ap.add_argument("--parent-overrides", nargs="*", default=[], help="config overrides of --parent-config")
    ap.add_argument("--only", nargs="+", default=None, metavar="MODEL",
                    help="re-measure only these models (e.g. MeanFlow); the other rows stay from --out's file")
    ap.add_argument("--out-dir", default="runs/few-step", help="where the new runs go")
    ap.add_argument("--pairs", type=int, default=20000)
    ap.add_argument("--reflow-steps", type=int, default=3000)
    ap.add_argument("--distill-steps", type=int, default=2000)
    ap.add_argument("--meanflow-steps", type=int, default=5000)
    ap.add_argument("--meanflow-overrides", nargs="*", default=[], help="config overrides of the MeanFlow run")
    ap.add_argument("--no-3rf", action="store_true", help="skip the 3-rectified flow")
    ap.add_argument("--nfes", type=int, nargs="+", default=[1, 2, 4, 100])
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--timing-n", type=int, default=10000, help="samples per wall-clock timing")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=12345)
    ap.add_argument("--out", default=None, help="results JSON (default benchmarks/results/few_step.json)")
    return ap.parse_args(argv)


def parent_data(args: argparse.Namespace):
    """The parent's data settings: from its run directory, else (``--only``) from ``--parent-config``."""
    if (Path(args.parent) / "config.yaml").exists() or args.parent_config is None:
        return load_run(Path(args.parent)).config.data
    return load_config(args.parent_config, args.parent_overrides).data


class Chain:
    """The runs of one set, their rows and the results file, written after each model (see the module)."""

    def __init__(self, args: argparse.Namespace):
        self.args, self.started = args, time.perf_counter()
        data_config = parent_data(args)
        self.dataset = load_dataset(data_config)
        self.same_data = [f"data.{k}={'null' if v is None else v}" for k, v in
                          (("name", data_config.name), ("n_train", data_config.n_train), ("noise", data_config.noise),
                           ("seed", data_config.seed))]
        self.refs = [self.dataset.reference(args.n, args.seed + i) for i in range(args.repeats)]
        floor = [float(energy_distance(self.dataset.reference(args.n, args.seed + 100 + i), self.refs[i]))
                 for i in range(args.repeats)]
        self.floor = mean_std(floor)
        out = Path(args.out) if args.out else RESULTS / "few_step.json"
        kept = json.loads(out.read_text())["rows"] if args.only and out.exists() else []
        self.rows: list[dict] = [r for r in kept if r["model"] not in args.only]

    def build(self, name: str, run_dir: Path, make) -> None:
        """Train ``run_dir`` with ``make()`` unless it exists (its total time includes drawing the pairs), score it
        and write the results so far; with ``--only``, a model not named keeps its earlier rows."""
        args = self.args
        if args.only and name not in args.only:
            return
        total = None
        if not (run_dir / "checkpoints").is_dir():
            t0 = time.perf_counter()
            make()
            total = time.perf_counter() - t0
        run = load_run(run_dir)
        samplers = ["euler"] + (["mean-flow"] if run.model.objective.trains_interval else [])
        for sampler in samplers:
            for nfe in args.nfes:
                row = {"model": name, "run": str(run_dir), **score(run.model, sampler, nfe, self.refs, args.n,
                                                                     args.seed + 7)}
                row["seconds_10k"] = sample_seconds(run.model, sampler, nfe, args.timing_n)
                self.rows.append(row)
                print(json.dumps(row), flush=True)
        straight = path_straightness(run.model, 1000, 25, seed=args.seed + 3)
        train_s = train_seconds(run_dir)
        self.rows.append({"model": name, "run": str(run_dir), "straightness": straight["value"],
                          "train_seconds": train_s, "total_seconds": total, "steps": run.step,
                          "pairs_seconds": (total - train_s) if total is not None and run.config.reflow.parent
                          else None, "parameters": sum(p.numel() for p in run.model.parameters())})
        print(json.dumps(self.rows[-1]), flush=True)
        self.write()

    def write(self) -> None:
        order = ["1-RF", "2-RF", "2-RF distilled", "MeanFlow", "3-RF"]
        self.rows.sort(key=lambda r: order.index(r["model"]) if r["model"] in order else len(order))
        args = self.args
        record = {"data": self.dataset.name, "n": args.n, "repeats": args.repeats, "pairs": args.pairs,
                  "timing_n": args.timing_n,
                  "noise_floor": {"energy_distance": self.floor[0], "energy_distance_std": self.floor[1]},
                  "rows": self.rows, "seconds": time.perf_counter() - self.started,
                  "cpu_capability": machine().get("cpu_capability")}
        print(f"wrote {write_results('few_step', record, args.out)}", flush=True)


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    out_dir, parent = Path(args.out_dir), Path(args.parent)
    chain = Chain(args)

    def reflow(source: Path, run_dir: Path, steps: int, distill: int = 0):
        return lambda: train(reflow_config(source, pairs=args.pairs, distill=distill,
                                           overrides=[f"run.dir={run_dir}", f"train.steps={steps}"]))

    chain.build("1-RF", parent, lambda: None)
    chain.build("2-RF", out_dir / "rf2", reflow(parent, out_dir / "rf2", args.reflow_steps))
    chain.build("2-RF distilled", out_dir / "rf2-distill1",
                reflow(out_dir / "rf2", out_dir / "rf2-distill1", args.distill_steps, distill=1))
    chain.build("MeanFlow", out_dir / "meanflow", lambda: train(load_config(
        ROOT / "configs/meanflow-checkerboard.yaml",
        [*chain.same_data, f"run.dir={out_dir / 'meanflow'}", f"train.steps={args.meanflow_steps}",
         "model.ot_coupling=false", *args.meanflow_overrides])))  # the tables' coupling; the preset's is OT
    if not args.no_3rf:
        chain.build("3-RF", out_dir / "rf3", reflow(out_dir / "rf2", out_dir / "rf3", args.reflow_steps))


if __name__ == "__main__":
    main()
