"""EMA schedules against run length: the sample quality of the averaged weights after short and long runs.

The EMA never feeds back into training, so each case trains **once** with the engine (``flowforge.train.train``,
the preset's settings and ``train.steps``) while several :class:`flowforge.train.EMA` copies follow the same
trajectory through the engine's ``on_step`` hook, one per schedule:

- ``constant 0.999``: ``beta = 0.999`` from the first step (flowforge's rule before this benchmark);
- ``warmup 0.999``: ``beta_t = min(0.999, (1 + t) / (10 + t))`` (diffusers' EMA warm-up);
- ``power 0.05`` / ``power 0.10``: EDM2's power-function EMA with relative width ``sigma_rel`` (arXiv:2312.02696).

Each one and the raw weights are sampled with the preset's sampler from the same prior draw and scored by
energy distance against ``--repeats`` fresh reference draws of ``--n`` points (mean and std), beside the noise
floor and the matched Gaussian. Writes ``benchmarks/results/ema_run_length.json``.

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.ema_run_length                       # every case, ~12 min
    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.ema_run_length --cases rf-moons:500  # one case
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from flowforge.config import load_config
from flowforge.data import load_dataset
from flowforge.metrics import energy_distance, matched_gaussian
from flowforge.train import EMA, make_ema, train

from benchmarks.harness import RESULTS, ROOT, mean_std, write_results

NAME = "ema_run_length"
CASES = ("rf-checkerboard:400", "rf-moons:500", "rf-moons:2000", "rf-checkerboard:5000", "fm-digits:3000")
VARIANTS = {"constant 0.999": ("constant", 0.999, 0.05), "warmup 0.999": ("warmup", 0.999, 0.05),
            "power 0.05": ("power", 0.999, 0.05), "power 0.10": ("power", 0.999, 0.10)}


class SeveralEMAs:
    """One :class:`EMA` per schedule, following a training through the engine's ``on_step`` hook: the EMA never
    feeds back into training, so one training serves every schedule. Each average is made at the first step and
    copies the weights then, as the engine's own does."""

    def __init__(self):
        self.emas: dict[str, EMA] = {}

    def __call__(self, model: nn.Module, step: int) -> None:
        if not self.emas:
            self.emas = {name: make_ema(model, *args) for name, args in VARIANTS.items()}
        for ema in self.emas.values():
            ema.update(model, step)


def scores(samples: torch.Tensor, references: list[torch.Tensor]) -> dict:
    values = [energy_distance(samples[:len(r)], r) for r in references]
    m, sd = mean_std(values)
    return {"energy_distance": m, "energy_distance_std": sd, "per_reference": values}


def run_case(case: str, n: int, repeats: int, seed: int) -> dict:
    preset, steps = case.split(":")
    emas = SeveralEMAs()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(ROOT / "configs" / f"{preset}.yaml",
                          [f"run.dir={tmp}/run", f"train.steps={steps}", "train.sample_every=0",
                           "train.tensorboard=false", f"train.ckpt_every={steps}"])
        t0 = time.perf_counter()
        result = train(cfg, progress=False, on_step=emas)
        seconds = time.perf_counter() - t0
    dataset = load_dataset(cfg.data)
    if dataset.fresh is not None:  # toy sets: fresh reference draws and a fresh draw as the floor
        references = [dataset.reference(n, seed=seed + 1 + 10 * k) for k in range(repeats)]
        floor = [dataset.fresh(n, seed + 2 + 10 * k) for k in range(repeats)]
    else:  # finite sets: the test split, and as many training examples as the floor
        references = [dataset.test]
        pick = torch.randperm(len(dataset.train), generator=torch.Generator().manual_seed(seed + 2))
        floor = [dataset.train[pick[:len(dataset.test)]]]
    references = [r.flatten(1) for r in references]
    floor = [f.flatten(1) for f in floor]
    rows = {"noise floor": {"energy_distance": mean_std([energy_distance(f, r) for f, r in zip(floor, references)])[0]},
            "matched Gaussian": scores(matched_gaussian(dataset.train, n, seed=seed + 3).flatten(1), references)}
    options = {"sampler": cfg.sample.sampler, "steps": cfg.sample.steps}
    weights = {"raw weights": result.model, **{name: ema.module for name, ema in emas.emas.items()}}
    for name, model in weights.items():
        model.eval()
        with torch.no_grad():
            x = model.sample(n, generator=torch.Generator().manual_seed(seed), **options).flatten(1)
        rows[name] = scores(x, references)
        print(f"  {case:22s} {name:16s} energy distance {rows[name]['energy_distance']:.4f} "
              f"± {rows[name]['energy_distance_std']:.4f}", flush=True)
    print(f"  {case:22s} noise floor {rows['noise floor']['energy_distance']:.4f}, matched Gaussian "
          f"{rows['matched Gaussian']['energy_distance']:.4f}; trained in {seconds:.0f} s", flush=True)
    return {"case": case, "preset": preset, "steps": int(steps), "sampler": options, "train_seconds": seconds,
            "rows": rows}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cases", nargs="+", default=list(CASES), help="preset:steps")
    p.add_argument("--n", type=int, default=5000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=12345)
    p.add_argument("--out", default=str(RESULTS / f"{NAME}.json"))
    args = p.parse_args()
    out = Path(args.out)
    previous = json.loads(out.read_text()).get("cases", {}) if out.exists() else {}
    cases = dict(previous)
    for case in args.cases:
        cases[case] = run_case(case, args.n, args.repeats, args.seed)
    order = [c for c in CASES if c in cases] + [c for c in cases if c not in CASES]
    path = write_results(NAME, {"about": __doc__.split("\n\n")[0], "variants": VARIANTS, "n": args.n,
                                "repeats": args.repeats, "seed": args.seed,
                                "cases": {c: cases[c] for c in order}}, path=out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
