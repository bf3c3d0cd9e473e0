"""Heun with and without its correction on the last step to ``t = 0``, on a trained run, same prior draw.

The sampler option ``last_step`` (``sample.last_step``) chooses the rule of Heun's step to ``t = 0``: ``euler``
(EDM, arXiv:2206.00364, Algorithm 1, the default) or ``heun`` (a correction there too, for fields finite at
``t = 0``: a velocity network on its own path). This measures what the last correction costs or gains: energy
distance of ``--n`` samples (on the data's levels) against the test split, for each ``--steps``, from the same
prior draw. Writes every number to ``--out`` (default ``benchmarks/results/heun_last_step.json``; with several
runs, one entry per run under ``by_run``: the README's table reads ``heun_last_step_demo_digits.json``).

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.heun_last_step runs/fm-mnist-cpu --steps 4 8
    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.heun_last_step runs/demo runs/fm-digits --steps 4 8 16 50 \
        --n 2000 --out benchmarks/results/heun_last_step_demo_digits.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from flowforge.data import load_dataset
from flowforge.metrics import energy_distance
from flowforge.models.field import PathField
from flowforge.runs import load_run
from flowforge.solvers import get_solver

from benchmarks.harness import RESULTS, write_results


def measure(run_dir: str, steps_list: list[int], n: int, seed: int) -> dict:
    run = load_run(run_dir)
    model = run.model
    test = load_dataset(run.config.data).test
    print(f"{run_dir}: {n} samples vs {len(test)} test examples, seed {seed}")
    rows = []
    for steps in steps_list:
        times = model.time_grid(steps)
        # the prior at the grid's first time, as model.sample draws it (not always t_max: see sigma_top)
        x1 = model.path.prior_sample((n, *model.shape), float(times[0]),
                                     generator=torch.Generator().manual_seed(seed))
        for last_step in ("heun", "euler"):
            with torch.no_grad():
                result = get_solver("heun", last_step=last_step).solve(PathField(model), x1.clone(), times)
            ed = energy_distance(model.from_model_space(result.x), test)
            rows.append({"steps": steps, "last_step": last_step, "euler_last_step": last_step == "euler",
                         "nfe": result.nfe, "energy_distance": ed})
            print(f"  steps {steps:3d}  last step {last_step:5s} NFE {result.nfe:3d}  energy distance {ed:.4f}",
                  flush=True)
    return {"run": run_dir, "name": run.config.run.name, "step": run.step, "weights": run.weights, "n": n,
            "n_test": len(test), "seed": seed, "rows": rows}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+")
    p.add_argument("--steps", type=int, nargs="+", default=[4, 8])
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(RESULTS / "heun_last_step.json"))
    args = p.parse_args()
    entries = [measure(run, args.steps, args.n, args.seed) for run in args.runs]
    if len(entries) == 1:
        record = entries[0]
    else:
        out = Path(args.out)
        previous = json.loads(out.read_text()).get("by_run", {}) if out.exists() else {}
        record = {"by_run": {**previous, **{e["name"]: e for e in entries}}}
    out = write_results("heun_last_step", record, path=args.out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
