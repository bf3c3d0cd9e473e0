"""Heun with and without its correction on the last step to ``t = 0``, on a trained run, same prior draw.

flowforge's Heun corrects every step of a field that is finite at ``t = 0`` (a velocity network on its own
path) and takes an Euler last step otherwise (EDM, arXiv:2206.00364, Algorithm 1, which does so always).
This measures what the last correction costs or gains: energy distance of ``--n`` samples (on the data's
levels) against the test split, for each ``--steps``. Writes every number to ``--out`` (default
``benchmarks/results/heun_last_step.json``).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/heun_last_step.py runs/fm-mnist-cpu --steps 4 8
"""

from __future__ import annotations

import argparse

import torch
from common import RESULTS, write_results

from flowforge.data import load_dataset
from flowforge.metrics import energy_distance
from flowforge.models.field import PathField
from flowforge.runs import load_run
from flowforge.solvers import get_solver


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run")
    p.add_argument("--steps", type=int, nargs="+", default=[4, 8])
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(RESULTS / "heun_last_step.json"))
    args = p.parse_args()
    run = load_run(args.run)
    model = run.model
    test = load_dataset(run.config.data).test
    print(f"{args.run}: {args.n} samples vs {len(test)} test images, seed {args.seed}")
    rows = []
    for steps in args.steps:
        times = model.time_grid(steps)
        # the prior at the grid's first time, as model.sample draws it (not always t_max: see sigma_top)
        x1 = model.path.prior_sample((args.n, *model.shape), float(times[0]),
                                     generator=torch.Generator().manual_seed(args.seed))
        for label, euler_last in (("heun", False), ("heun, Euler last step", True)):
            field = PathField(model)
            if euler_last:
                field.finite_at_zero = False  # Heun's rule for fields undefined at t = 0: no last correction
            result = get_solver("heun").solve(field, x1.clone(), times)
            ed = energy_distance(model.from_model_space(result.x), test)
            rows.append({"steps": steps, "variant": label, "euler_last_step": euler_last, "nfe": result.nfe,
                         "energy_distance": ed})
            print(f"  steps {steps:3d}  {label:22s} NFE {result.nfe:3d}  energy distance {ed:.4f}", flush=True)
    out = write_results("heun_last_step", {"run": args.run, "name": run.config.run.name, "step": run.step,
                                           "weights": run.weights, "n": args.n, "n_test": len(test),
                                           "seed": args.seed, "rows": rows}, path=args.out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
