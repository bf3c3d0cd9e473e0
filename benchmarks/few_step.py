"""Few-step generation on a 2-D set: the 1-rectified flow, its reflow (2-RF), a one-step distillation of the 2-RF,
and MeanFlow, each scored at 1, 2, 4 and 8 network evaluations (NFE).

The chain, each step through the library as a user runs it:

1. the parent: a trained 1-rectified flow (``--parent``, default ``runs/demo``, which ``make demo`` trains:
   ``configs/rf-checkerboard.yaml``);
2. ``2-RF``: :func:`flowforge.runs.pairs.reflow_config` (what ``flowforge reflow PARENT --pairs P`` trains):
   ``--pairs`` (noise, sample) pairs from the parent's ODE (dopri5, rtol = atol = 1e-5), then ``--reflow-steps``
   steps on them from the parent's weights;
3. ``2-RF distilled``: the same on the 2-RF's pairs with ``--distill 1`` (trained only at t = 1);
4. ``MeanFlow``: ``configs/meanflow-checkerboard.yaml`` trained from scratch for ``--meanflow-steps`` steps, on the
   parent's data set (its toy-set draw: name, size, noise, seed), with ``--meanflow-overrides`` on top (e.g. the
   parent's network).

Scores: energy distance (``flowforge.metrics.energy_distance``) of ``--n`` samples against ``--n`` fresh draws of
the true distribution, mean ± std over ``--repeats`` reference draws, beside the noise floor (fresh draws against
fresh draws: what a perfect model scores) — Euler on the uniform grid for every model, and MeanFlow's own sampler
(``mean-flow``) for MeanFlow; and the straightness of each model's ODE (``flowforge eval``'s measure: 1000 paths,
25 RK4 steps). Training time is each run's own (its ``metrics.jsonl``), on the machine below.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/few_step.py --parent runs/demo
    # another set: a parent trained on it, the runs and the results file named after it
    .venv/bin/flowforge train configs/rf-moons.yaml run.dir=runs/rf-moons-parent
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/few_step.py --parent runs/rf-moons-parent \
        --out-dir runs/few-step-moons --out benchmarks/results/few_step_moons.json \
        --meanflow-overrides model.net.width=128 model.net.depth=3 train.batch_size=256
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, mean_std, write_results  # noqa: E402

from flowforge.config import load_config  # noqa: E402
from flowforge.data import load_dataset  # noqa: E402
from flowforge.metrics import energy_distance  # noqa: E402
from flowforge.runs import load_run, read_metrics  # noqa: E402
from flowforge.runs.evaluate import path_straightness  # noqa: E402
from flowforge.runs.pairs import reflow_config  # noqa: E402
from flowforge.train import train  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


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


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parent", default="runs/demo", help="a trained 1-rectified flow on a 2-D set")
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
    args = ap.parse_args(argv)
    out_dir = Path(args.out_dir)
    parent = Path(args.parent)
    started = time.perf_counter()
    data_config = load_run(parent).config.data
    dataset = load_dataset(data_config)
    same_data = [f"data.{k}={'null' if v is None else v}" for k, v in
                 (("name", data_config.name), ("n_train", data_config.n_train), ("noise", data_config.noise),
                  ("seed", data_config.seed))]
    refs = [dataset.reference(args.n, args.seed + i) for i in range(args.repeats)]
    floor = [float(energy_distance(dataset.reference(args.n, args.seed + 100 + i), refs[i]))
             for i in range(args.repeats)]
    floor_mean, floor_std = mean_std(floor)
    rows: list[dict] = []

    def build(name: str, run_dir: Path, make) -> None:
        """Train ``run_dir`` with ``make()`` unless it exists (its total time includes drawing the pairs), score it
        and write the results so far."""
        total = None
        if not (run_dir / "checkpoints").is_dir():
            t0 = time.perf_counter()
            make()
            total = time.perf_counter() - t0
        run = load_run(run_dir)
        samplers = ["euler"] + (["mean-flow"] if run.model.mean_flow is not None else [])
        for sampler in samplers:
            for nfe in args.nfes:
                row = {"model": name, "run": str(run_dir), **score(run.model, sampler, nfe, refs, args.n,
                                                                     args.seed + 7)}
                row["seconds_10k"] = sample_seconds(run.model, sampler, nfe, args.timing_n)
                rows.append(row)
                print(json.dumps(row), flush=True)
        straight = path_straightness(run.model, 1000, 25, seed=args.seed + 3)
        train_s = train_seconds(run_dir)
        rows.append({"model": name, "run": str(run_dir), "straightness": straight["value"],
                     "train_seconds": train_s, "total_seconds": total, "steps": run.step,
                     "pairs_seconds": (total - train_s) if total is not None and run.config.reflow.parent else None,
                     "parameters": sum(p.numel() for p in run.model.parameters())})
        print(json.dumps(rows[-1]), flush=True)
        record = {"data": dataset.name, "n": args.n, "repeats": args.repeats, "pairs": args.pairs,
                  "timing_n": args.timing_n,
                  "noise_floor": {"energy_distance": floor_mean, "energy_distance_std": floor_std},
                  "rows": rows, "seconds": time.perf_counter() - started,
                  "cpu_capability": machine().get("cpu_capability")}
        print(f"wrote {write_results('few_step', record, args.out)}", flush=True)

    def reflow(source: Path, run_dir: Path, steps: int, distill: int = 0):
        return lambda: train(reflow_config(source, pairs=args.pairs, distill=distill,
                                           overrides=[f"run.dir={run_dir}", f"train.steps={steps}"]))

    build("1-RF", parent, lambda: None)
    build("2-RF", out_dir / "rf2", reflow(parent, out_dir / "rf2", args.reflow_steps))
    build("2-RF distilled", out_dir / "rf2-distill1",
          reflow(out_dir / "rf2", out_dir / "rf2-distill1", args.distill_steps, distill=1))
    build("MeanFlow", out_dir / "meanflow", lambda: train(load_config(
        ROOT / "configs/meanflow-checkerboard.yaml",
        [*same_data, f"run.dir={out_dir / 'meanflow'}", f"train.steps={args.meanflow_steps}",
         *args.meanflow_overrides])))
    if not args.no_3rf:
        build("3-RF", out_dir / "rf3", reflow(out_dir / "rf2", out_dir / "rf3", args.reflow_steps))


if __name__ == "__main__":
    main()
