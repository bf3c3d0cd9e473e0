r"""MeanFlow's settings on an image set (issue 31): each variant of ``configs/meanflow-<data>.yaml`` trained at one
budget beside flow matching with the same network, data, time law and budget, scored as the few-step image tables
are (``benchmarks/few_step_images.py``): ``--n`` samples from the same noise, Fréchet distance in the set's pinned
classifier features against the test split (:func:`flowforge.jobs.image_eval.image_scores`), at 1 and 2
MeanFlow steps and at 100 Euler steps of the instantaneous field ``u(z, t, t)``.

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.few_step_meanflow --steps 800

A second call with the same ``--out`` keeps the rows it already has (same variant and settings); a run directory
that holds a finished checkpoint is scored, not trained again.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from flowforge.config import load_config
from flowforge.data import load_dataset
from flowforge.jobs.image_eval import image_scores
from flowforge.metrics import matched_gaussian
from flowforge.runs import load_run, read_metrics
from flowforge.train import train

from benchmarks.harness import RESULTS, ROOT, machine, portable, write_results
from benchmarks.meanflow_weighting import PAPER_TIMES

FLOW_MATCHING = "flow matching"
VARIANTS: dict[str, list[str]] = {
    FLOW_MATCHING: ["model.objective=regression", "sample.sampler=euler", "sample.steps=100"],
    "p=1 (paper)": ["model.meanflow.p=1", "model.meanflow.weighting=example", PAPER_TIMES],
    "p=0, FM times": ["model.meanflow.p=0", "model.meanflow.flow_matching_times=true"],
    "p=1 group, FM times": ["model.meanflow.p=1", "model.meanflow.weighting=group",
                            "model.meanflow.flow_matching_times=true"],
    "p=0, FM times, ratio 0.5": ["model.meanflow.p=0", "model.meanflow.flow_matching_times=true",
                                 "model.meanflow.ratio=0.5"],
    # minibatch-OT pairs, which lower the target's noise (benchmarks/meanflow_oracle.py), with the preset's weight
    "p=1 (paper), minibatch OT": ["model.meanflow.p=1", "model.meanflow.weighting=example", PAPER_TIMES,
                                  "model.ot_coupling=true"],
}
# (sampler, NFE) scored per model; flow matching has no average velocity
GRID = (("mean-flow", 1), ("mean-flow", 2), ("euler", 100))


def fd_of(ctx: dict, model, sampler: str, nfe: int) -> dict:
    """FD of ``--n`` samples drawn from the shared noise, and the sampling seconds."""
    t0 = time.perf_counter()
    x = model.sample(ctx["n"], sampler=sampler, steps=nfe, grid="uniform", noise=ctx["noise"])
    took = time.perf_counter() - t0
    scores = image_scores(ctx["dataset"], x, ctx["gaussian"], labels=None, seed=ctx["seed"])
    return {"fd": scores["model"]["fd"], "floor": scores["noise_floor"]["fd"],
            "gaussian": scores["matched_gaussian"]["fd"], "sample_seconds": took}


def trained(config: Path, run_dir: Path, steps: int, overrides: list[str]) -> float | None:
    """Train one variant unless its run already reached ``steps``; the engine's training seconds."""
    done = (run_dir / "checkpoints").is_dir()
    if not done or load_run(run_dir).step < steps:  # a killed run resumes from its checkpoint
        train(load_config(config, [f"run.dir={run_dir}", f"train.steps={steps}", "train.sample_every=0",
                                   "model.ot_coupling=false", *overrides]),  # the sweep's pairs; a variant may set OT
              resume=done, progress=False)
    seconds = [r["seconds"] for r in read_metrics(run_dir) if "seconds" in r and r.get("kind", "train") == "train"]
    return seconds[-1] if seconds else None


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="digits")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--overrides", nargs="*", default=[], help="config overrides of every run, variants' first")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=12345)
    ap.add_argument("--out-dir", default=None, help="default runs/meanflow-<data>-sweep")
    ap.add_argument("--out", default=None, help="default benchmarks/results/few_step_meanflow_<data>.json")
    args = ap.parse_args(argv)
    config = ROOT / f"configs/meanflow-{args.data}.yaml"
    out = Path(args.out) if args.out else RESULTS / f"few_step_meanflow_{args.data}.json"
    settings = {"steps": args.steps, "overrides": args.overrides, "n": args.n, "seed": args.seed}
    old = json.loads(out.read_text()) if out.exists() else {}
    rows = [r for r in old.get("rows", []) if r.get("settings") == settings]
    dataset = load_dataset(load_config(config).data)
    noise = torch.randn((args.n, *dataset.shape), generator=torch.Generator().manual_seed(args.seed))
    ctx = {"dataset": dataset, "gaussian": matched_gaussian(dataset.train, args.n, seed=args.seed), "n": args.n,
           "seed": args.seed, "noise": noise}
    for variant in args.variants:
        if any(r["variant"] == variant for r in rows):
            continue
        run_dir = ROOT / (args.out_dir or f"runs/meanflow-{args.data}-sweep") / variant.replace(" ", "-").replace(
            ",", "").replace("(", "").replace(")", "")
        train_s = trained(config, run_dir, args.steps, [*args.overrides, *VARIANTS[variant]])
        model = load_run(run_dir).model
        grid = GRID if model.objective.trains_interval else [g for g in GRID if g[0] == "euler"]
        row = {"variant": variant, "settings": settings, "run": portable(str(run_dir)),
               "train_seconds": train_s, **{f"{s} {k}": fd_of(ctx, model, s, k) for s, k in grid}}
        rows.append(row)
        print(json.dumps(row), flush=True)
        write_results(f"few_step_meanflow_{args.data}", {"data": args.data, "rows": rows,
                                                         "cpu_capability": machine().get("cpu_capability")}, out)


if __name__ == "__main__":
    main()
