"""How far a NICE-on-MNIST run is from the paper's 1980.50 nats, and how long it would need to get there.

Reads the held-out log-likelihoods that training logs every ``train.eval_every`` steps (``kind: val``
records of ``metrics.jsonl``; NICE's protocol: data in [0, 1], uniform noise of width 1/256, nats per image)
and projects the step at which the curve would reach the paper's figure in two ways:

- linear: the slope of the last third of the curve carried on; curves like this one decelerate, so this is
  an optimistic (lower) bound on the steps needed;
- logarithmic: ``LL(s) = a + b ln s`` fitted to the last third, solved for 1980.50;
- power law: ``LL(s) = a - b * s^(-c)`` fitted to the curve (scipy least squares), solved for 1980.50;
  reported only when the fit is not degenerate and its asymptote ``a`` lies above the target.

Writes the curve and the projections (steps needed, ``None`` where a fit gives none) to ``--out`` (default
``benchmarks/results/nice_projection.json``).

    .venv/bin/python -m benchmarks.nice_projection runs/nice-mnist
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from benchmarks.harness import RESULTS, write_results

PAPER_LL = 1980.50  # Dinh et al., 2015, Table 2 (MNIST, logistic prior)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--steps-per-epoch", type=int, default=300, help="60000 images / batch 200")
    parser.add_argument("--out", default=str(RESULTS / "nice_projection.json"))
    args = parser.parse_args()
    rows = [json.loads(line) for line in (args.run_dir / "metrics.jsonl").read_text().splitlines()]
    val = [(r["step"], r["log_likelihood"]) for r in rows if r.get("kind") == "val"]
    train = [r for r in rows if r.get("kind", "train") == "train"]
    if len(val) < 3:
        raise SystemExit(f"{args.run_dir}: need at least 3 held-out evaluations (train.eval_every), found {len(val)}")
    steps, ll = np.array([s for s, _ in val], float), np.array([v for _, v in val], float)
    spe = args.steps_per_epoch
    print(f"run {args.run_dir}: {int(steps[-1])} steps = {steps[-1] / spe:.1f} epochs, "
          f"{train[-1]['seconds'] / 60:.1f} min of training")
    print("step    epoch   held-out log-likelihood (nats)")
    for s, v in val:
        print(f"{s:6d}  {s / spe:6.1f}   {v:9.2f}")
    print(f"paper: {PAPER_LL} nats; gap now {PAPER_LL - ll[-1]:.1f} nats")

    tail = max(3, len(val) // 3)
    projections: dict[str, dict] = {}
    slope = np.polyfit(steps[-tail:], ll[-tail:], 1)[0]
    if slope > 0:
        need = steps[-1] + (PAPER_LL - ll[-1]) / slope
        projections["linear"] = {"points": tail, "nats_per_epoch": slope * spe, "steps": need, "epochs": need / spe,
                                 "note": "a lower bound: the curve decelerates"}
        print(f"linear (last {tail} points, {slope * spe:.1f} nats/epoch): >= {need:,.0f} steps "
              f"= {need / spe:,.0f} epochs (a lower bound: the curve decelerates)")
    a, b = np.polyfit(np.log(steps[-tail:]), ll[-tail:], 1)[::-1]  # LL = a + b ln s on the last points
    if b > 0:
        need = np.exp((PAPER_LL - a) / b)
        projections["logarithmic"] = {"points": tail, "a": a, "b": b, "steps": need, "epochs": need / spe}
        print(f"logarithmic (last {tail} points, LL = {a:.0f} + {b:.1f} ln s): {need:,.0f} steps "
              f"= {need / spe:,.0f} epochs")
    try:
        from scipy.optimize import curve_fit

        def power(s, a, b, c):
            return a - b * np.power(s, -c)

        (a, b, c), _ = curve_fit(power, steps, ll, p0=(ll[-1] + 500, 1e4, 0.5), maxfev=20000)
        need = (b / (a - PAPER_LL)) ** (1 / c) if c >= 0.01 and a > PAPER_LL and b > 0 else None
        projections["power_law"] = {"a": a, "b": b, "c": c, "steps": need,
                                    "epochs": None if need is None else need / spe}
        if c < 0.01:
            print("power law: the fit degenerates to the logarithm above (exponent ~ 0)")
        elif need is not None:
            print(f"power law LL = {a:.0f} - {b:.3g} s^-{c:.3f}: reaches {PAPER_LL} at {need:,.0f} steps "
                  f"= {need / spe:,.0f} epochs")
        else:
            print(f"power law LL = {a:.0f} - {b:.3g} s^-{c:.3f}: its asymptote is below the paper's figure; "
                  f"the curve is too short to extrapolate that far")
    except (ImportError, RuntimeError) as err:
        print(f"power-law fit unavailable: {err}")

    out = write_results("nice_projection", {
        "run": str(args.run_dir), "paper_log_likelihood": PAPER_LL, "steps_per_epoch": spe,
        "train_minutes": train[-1]["seconds"] / 60, "held_out": [{"step": s, "log_likelihood": v} for s, v in val],
        "projections": projections}, path=args.out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
