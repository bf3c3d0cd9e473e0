"""Sample quality against the number of function evaluations (NFE), per sampler, for trained image runs.

For each run directory: load the EMA weights (``flowforge.load``), then for each sampler in
``--samplers`` (default euler, heun, dpm++2m, ddim) and each target NFE in ``--nfes`` (default 2, 4, 8, 16,
32, 64) draw ``--n`` samples with the same seed (so every sampler starts from the same prior draw) on the run's
default grid (``sample.grid`` of its config, else the model's default: uniform for the linear path, Karras for
VP / VE / EDM), and score them against the whole test split with the energy distance (V-statistic,
``flowforge.metrics.energy_distance``).

Steps per target NFE: one evaluation per step for euler, ddim and dpm++2m (steps = NFE); heun takes two per step,
minus one when its last step ends at noise level 0 of a denoiser (EDM's rule), so steps = NFE / 2 and the real
NFE is 2 steps (a velocity network) or 2 steps - 1 (a denoiser). The NFE in the tables is the one the sampler
counted (``return_nfe=True``), not the target.

Two model columns:

- ``ED``: the ODE's continuous end points (``model.sample(..., dequantized=True)``). A continuous model is
  trained on uniformly dequantized data, so these are values ``lo + (hi - lo) (k + u) / L``, while the test
  images sit on the ``L`` grid points ``lo + (hi - lo) k / (L - 1)``: this column includes that mismatch;
- ``ED snapped``: each sample mapped to the data value of the dequantization bin it falls in, i.e. a discrete
  sample, what ``model.sample`` returns by default (and the normalizing flows' ``sample``).

Yardsticks, each with the same number of points as the model rows against the same test images (the V-statistic's
bias depends on the sample sizes): the noise floor, ``--n`` training images (a random subset) against the test
split, and a Gaussian with the training data's mean and covariance (``matched_gaussian``), both as mean ± std
over ``--yardstick-draws`` draws.

Prints a markdown table per run, writes every number to ``--out`` (JSON) and a figure to ``--figure``
(x: NFE, log scale; y: energy distance, log scale; one line per sampler, one panel per run; floor and Gaussian
as horizontal lines). ``--render JSON`` prints the tables and redraws the figure of an earlier results file.

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.nfe_curve runs/fm-digits runs/edm-digits runs/vp-digits
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

from flowforge.data import load_dataset
from flowforge.metrics import energy_distance, matched_gaussian
from flowforge.runs import load_run, sample_options

from benchmarks.harness import RESULTS, command_line, mean_std, write_results

SAMPLERS = ("euler", "heun", "dpm++2m", "ddim")
NFES = (2, 4, 8, 16, 32, 64)


def steps_for(sampler: str, nfe: int) -> int:
    """Grid intervals giving about ``nfe`` evaluations (heun: two per step)."""
    return max(1, nfe // 2) if sampler == "heun" else nfe


def spread(values: list[float]) -> dict:
    """``{"mean", "std", "values"}`` of a yardstick's draws."""
    mean, std = mean_std(values)
    return {"mean": mean, "std": std, "values": values}


def measure_run(run_dir: str, samplers: list[str], nfes: list[int], n: int, seed: int, draws: int) -> dict:
    run = load_run(run_dir)
    cfg, model = run.config, run.model
    dataset = load_dataset(cfg.data)
    test = dataset.test
    discrete = getattr(model, "quantization", None) is not None
    if n > len(dataset.train):
        raise SystemExit(f"--n {n} is more than the {len(dataset.train)} training images the noise floor draws from")

    floor, gauss = [], []
    for k in range(draws):
        pick = torch.randperm(len(dataset.train), generator=torch.Generator().manual_seed(seed + 1000 + k))[:n]
        floor.append(energy_distance(dataset.train[pick], test))
        gauss.append(energy_distance(matched_gaussian(dataset.train, n, seed=seed + 2000 + k), test))

    rows = []
    for sampler in samplers:
        for target in nfes:
            steps = steps_for(sampler, target)
            opts = sample_options(cfg, n, torch.Generator().manual_seed(seed), sampler=sampler, steps=steps)
            opts.update(return_nfe=True, dequantized=True)
            t0 = time.perf_counter()
            x, nfe = model.sample(n, **opts)
            seconds = time.perf_counter() - t0
            row = {"sampler": sampler, "target_nfe": target, "steps": steps, "nfe": nfe,
                   "grid": opts.get("grid") or "model default", "seconds": seconds,
                   "finite": bool(torch.isfinite(x).all())}
            if "last_step" in opts:  # Heun's rule for its step to t = 0 (sample.last_step)
                row["last_step"] = opts["last_step"]
            if row["finite"]:
                row["energy_distance"] = energy_distance(x, test)
                if discrete:
                    row["energy_distance_snapped"] = energy_distance(model.from_model_space(x), test)
                row["range"] = [float(x.min()), float(x.max())]
            else:
                row["nonfinite_samples"] = int((~torch.isfinite(x.reshape(n, -1))).any(1).sum())
            rows.append(row)
            ed = row.get("energy_distance", float("nan"))
            print(f"  {run_dir} {sampler:8s} steps {steps:3d} NFE {nfe:3d}  ED {ed:.5f}  "
                  f"snapped {row.get('energy_distance_snapped', float('nan')):.5f}  {seconds:6.1f} s", flush=True)

    # the grid model.time_grid picks when sample.grid is None
    default_grid = cfg.sample.grid or ("karras" if math.isfinite(model.path.sigma_range()[1]) else "uniform")
    return {"run": str(run_dir), "name": cfg.run.name, "step": run.step, "weights": run.weights,
            "path": cfg.model.path, "grid": default_grid, "data": cfg.data.name,
            "shape": list(run.data["shape"]), "levels": run.data.get("levels"), "n": n, "n_test": len(test),
            "seed": seed,
            "noise_floor": spread(floor), "matched_gaussian": spread(gauss), "rows": rows}


def render_tables(result: dict) -> str:
    out = []
    for run in result["runs"]:
        f, g = run["noise_floor"], run["matched_gaussian"]
        out.append(f"\n### {run['name']} ({run['path']} path, {run['grid']} grid, step {run['step']}, "
                   f"{run['weights']} weights): {run['n']} samples vs {run['n_test']} test images\n")
        out.append(f"noise floor ({run['n']} train images vs test): {f['mean']:.5f} ± {f['std']:.5f}; "
                   f"matched Gaussian: {g['mean']:.5f} ± {g['std']:.5f} "
                   f"(mean ± std over {len(f['values'])} draws)\n")
        samplers = list(dict.fromkeys(r["sampler"] for r in run["rows"]))
        targets = list(dict.fromkeys(r["target_nfe"] for r in run["rows"]))
        by = {(r["sampler"], r["target_nfe"]): r for r in run["rows"]}
        for key, label in (("energy_distance", "energy distance, the ODE end points (dequantized values)"),
                           ("energy_distance_snapped",
                            f"energy distance, samples snapped to the {run.get('levels', 17)} data levels")):
            if not any(key in r for r in run["rows"]):
                continue
            out.append(f"\n{label} (cell: value [real NFE])\n")
            out.append("| sampler | " + " | ".join(f"NFE ≈ {t}" for t in targets) + " |")
            out.append("|---|" + "---:|" * len(targets))
            for s in samplers:
                cells = []
                for t in targets:
                    r = by.get((s, t))
                    if r is None:
                        cells.append("")
                    elif key not in r:
                        cells.append(f"NaN ({r.get('nonfinite_samples', '?')} bad) [{r['nfe']}]")
                    else:
                        cells.append(f"{r[key]:.4f} [{r['nfe']}]")
                out.append(f"| {s} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = result["runs"]
    fig, axes = plt.subplots(1, len(runs), figsize=(max(7.0, 4.6 * len(runs)), 4.4), squeeze=False, sharey=True)
    markers = {"euler": "o", "heun": "s", "dpm++2m": "^", "ddim": "v"}
    for ax, run in zip(axes[0], runs):
        samplers = list(dict.fromkeys(r["sampler"] for r in run["rows"]))
        for s in samplers:
            rows = sorted((r for r in run["rows"] if r["sampler"] == s and "energy_distance" in r),
                          key=lambda r: r["nfe"])
            line, = ax.plot([r["nfe"] for r in rows], [r["energy_distance"] for r in rows],
                            marker=markers.get(s, "o"), label=s)
            snapped = [r for r in rows if "energy_distance_snapped" in r]
            if snapped:
                ax.plot([r["nfe"] for r in snapped], [r["energy_distance_snapped"] for r in snapped],
                        marker=markers.get(s, "o"), ls=":", color=line.get_color(), alpha=0.6, markersize=3)
        f, g = run["noise_floor"], run["matched_gaussian"]
        ax.axhline(f["mean"], color="k", ls="--", lw=1, label="noise floor (train vs test)")
        ax.axhline(g["mean"], color="gray", ls="-.", lw=1, label="matched Gaussian")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("NFE")
        ax.set_title(f"{run['name']} ({run['grid']} grid)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel(f"energy distance vs {runs[0]['n_test']} test images")
    axes[0][0].plot([], [], color="k", ls="-", label="solid: ODE end points (dequantized)")
    axes[0][0].plot([], [], color="k", ls=":", label="dotted: snapped to the data levels (what sample returns)")
    axes[0][0].legend(fontsize=7, loc="upper right")
    data = runs[0].get("data", "digits") + " " + "x".join(str(d) for d in runs[0].get("shape", [8, 8])[-2:])
    fig.suptitle(f"{data}: {runs[0]['n']} samples, seed {runs[0]['seed']}, same prior draw for every sampler",
                 fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="*", help="trained run directories, e.g. runs/fm-digits")
    p.add_argument("--n", type=int, default=1000, help="samples per (sampler, NFE) (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the prior draw, the same for every sampler")
    p.add_argument("--out", default=str(RESULTS / "nfe_curve.json"), help="results JSON")
    p.add_argument("--figure", default=str(RESULTS / "nfe-curve-digits.png"),
                   help="figure (PNG; the docs show it: `make docs-figures` copies it there)")
    p.add_argument("--samplers", nargs="+", default=list(SAMPLERS))
    p.add_argument("--nfes", nargs="+", type=int, default=list(NFES), help="target NFEs")
    p.add_argument("--yardstick-draws", type=int, default=5, help="draws of the noise floor and Gaussian baseline")
    p.add_argument("--render", metavar="JSON", help="print the tables and redraw the figure of an earlier file")
    args = p.parse_args(argv)

    if args.render:
        result = json.loads(Path(args.render).read_text())
    else:
        if not args.runs:
            p.error("give at least one run directory (or --render JSON)")
        torch.manual_seed(args.seed)
        t0 = time.perf_counter()
        result = {"runs": [measure_run(r, args.samplers, args.nfes, args.n, args.seed, args.yardstick_draws)
                           for r in args.runs]}
        result["seconds"] = time.perf_counter() - t0
        if argv is not None:  # called from Python: record the arguments given, not the caller's command line
            result["command"] = command_line(["-m", "benchmarks.nfe_curve", *argv])
        print(f"wrote {write_results('nfe_curve', result, path=args.out)}")
    print(render_tables(result))
    plot(result, Path(args.figure))
    print(f"\nwrote {args.figure}")


if __name__ == "__main__":
    main()
