"""SD3's resolution shift measured on one multi-resolution DiT (issue 27, experiment 3).

SD3 (Esser et al., 2024, arXiv:2403.03206, eq. 23) samples an image of ``m`` pixels from a model trained at ``n``
on times shifted towards noise, ``t' = s t / (1 + (s - 1) t)``, with ``s = sqrt(m / n)``. On the linear path
(``sigma = t / (1 - t)``) that is ``sigma' = s sigma``, which is how ``ContinuousModel.sample(shape=...)`` applies
it: ``n`` is the pixels of the model's data shape (``self.shape``, 28 x 28 for MNIST even when
``data.resolutions`` trains at 14, 21 and 28 px), ``m`` those of the size asked, so a side of ``L`` px gets the
formula's ``s_f = L / 28``: 0.5 at 14, 0.75 at 21, 1 (no shift) at 28, 1.25 at 35.

This draws ``--n`` samples of a ``configs/dit-mnist-multires.yaml`` run at each of ``--sizes`` (default: its
training sizes and one patch above) with several shifts ``s``: no shift (``s = 1``) and the formula's ``s_f``
times each of ``--factors``. The library's sampler applies ``s_f`` itself whenever the size is not the model's;
another ``s`` is asked for through the run's time grid: ``grid="shifted"`` with shift ``s / s_f`` composes with
it into ``sigma' = s sigma`` (the script checks the resulting grid against ``shift_times(uniform, s)`` before
sampling). Every ``s`` of a size starts from the same noise and labels (the grid's first time stays ``t = 1``).
Samples are scored as ``benchmarks.multires_grids`` scores them: resized to 28 px, FD in the pinned MNIST
classifier's features against the test split, beside a floor of ``--n`` training images taken down (or up) to
the size and back; label accuracy is the classifier's agreement with the labels asked for.

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.sd3_resolution_shift runs/sd3-shift-multires-6000 \\
        --seeds 0 1 --factors 0.25 0.44 0.67 1 1.5 2.25
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

from flowforge.data import load_dataset
from flowforge.data.packing import resize_images
from flowforge.metrics import default_extractor, load_extractor, reference_features, score_images
from flowforge.runs import load_run
from flowforge.solvers import shift_times

from benchmarks.harness import RESULTS, figure_path, machine, write_results
from benchmarks.multires_grids import dataclass_without_resolutions
from benchmarks.tables.sd3_resolution_shift import settings


def shifts_for(formula: float, factors: list[float]) -> list[float]:
    """No shift, the formula's ``s`` itself (the reference of the paired differences) and the formula's ``s`` times
    each factor, sorted, without repeats (at the base size the formula's ``s`` is 1)."""
    values = {1.0, round(formula, 6), *(round(formula * f, 6) for f in factors)}
    return sorted(values)


def grid_for(model, steps: int, s: float, formula: float, shape, base_shape) -> dict:
    """The sampler's options giving the time grid ``shift_times(uniform, s)`` at ``shape``: the library shifts by
    ``formula`` when ``shape`` differs from the model's, so the grid brings the rest, ``s / formula``."""
    rest = s / formula if tuple(shape) != tuple(base_shape) else s
    times = model.time_grid(steps, grid="shifted", shift=rest)
    if tuple(shape) != tuple(base_shape):
        times = model.resolution_shift(times, model.path, formula)
    want = shift_times(model.time_grid(steps, grid="uniform").double(), s)
    if not torch.allclose(times.double(), want, atol=1e-6):
        raise RuntimeError(f"grid for s={s} at {shape}: {times.tolist()} is not {want.tolist()}")
    return {"grid": "shifted", "grid_options": {"shift": rest}}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--n", type=int, default=300, help="samples scored per size and shift")
    ap.add_argument("--sizes", type=int, nargs="+", default=None,
                    help="sides in px (default: the run's training sizes and one patch above the largest)")
    ap.add_argument("--factors", type=float, nargs="+", default=[1 / 2.25, 1 / 1.5, 1.0, 1.5, 2.25],
                    help="shifts tried, as multiples of the formula's s = sqrt(m / n); s = 1 is always added")
    ap.add_argument("--solvers", nargs="+", default=None,
                    help="SAMPLER:STEPS pairs (default: the run's sampler and steps, then euler:10, a coarse grid "
                         "where the grid's placement matters more)")
    ap.add_argument("--raw", action="store_true", help="sample the raw weights instead of the EMA's")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0],
                    help="noise and floor-image seeds (the labels cycle through the classes for every seed); each "
                         "setting is drawn once per seed, and the table gives "
                         "the mean and the spread over seeds")
    ap.add_argument("--figure", default=None,
                    help="figure (default sd3-resolution-shift.png beside --out; '' for none)")
    ap.add_argument("--out", default=None, help="results JSON (default benchmarks/results/sd3_resolution_shift.json)")
    ap.add_argument("--replot", action="store_true",
                    help="draw the figure's scores again from --out's results (no sampling; no sample strip)")
    args = ap.parse_args(argv)
    args.figure = figure_path(args.figure, args.out, "sd3-resolution-shift.png")
    if args.replot and not args.figure:
        ap.error("--replot draws the figure: give --figure a path (or leave it out for the default)")
    if args.replot:
        rows = json.loads(Path(args.out or RESULTS / "sd3_resolution_shift.json").read_text())["rows"]
        figure(rows, {}, (0.0, 1.0), Path(args.figure))
        print(f"wrote {args.figure}")
        return
    run = load_run(args.run_dir, ema=not args.raw)
    cfg, model = run.config, run.model
    if not cfg.data.resolutions:
        ap.error(f"{args.run_dir}: not a multi-resolution run; train `configs/dit-mnist-multires.yaml`")
    patch = cfg.model.net.patch
    sizes = args.sizes or [*cfg.data.resolutions, max(cfg.data.resolutions) + patch]
    if any(size % patch for size in sizes):
        ap.error(f"--sizes {sizes}: every size must be a multiple of the patch {patch}")
    dataset = load_dataset(dataclass_without_resolutions(cfg.data))
    extractor = load_extractor(default_extractor(dataset.name, dataset.shape))
    value_range = tuple(dataset.value_range)
    reference = reference_features(dataset.test, dataset=dataset.name, split="test", extractor=extractor,
                                   value_range=value_range)
    base = tuple(model.shape)
    solvers = [(name, int(steps)) for name, steps in (x.rsplit(":", 1) for x in (
        args.solvers or [f"{cfg.sample.sampler}:{cfg.sample.steps}", "euler:10"]))]
    rows, examples = [], {}
    for size, seed in [(size, seed) for size in sizes for seed in args.seeds]:
        shape = (base[0], size, size)
        formula = math.sqrt(size * size / math.prod(base[1:]))  # SD3's s = sqrt(m / n), as sample(shape=) takes it
        pick = torch.randperm(len(dataset.train), generator=torch.Generator().manual_seed(seed + 1))[:args.n]
        floor = resize_images(resize_images(dataset.train[pick], size), base[-1])
        floor_score = score_images(floor, reference, extractor=extractor, value_range=value_range,
                                   labels=dataset.train_labels[pick], seed=seed)
        for (sampler, steps), s in [(v, s) for v in solvers for s in shifts_for(formula, args.factors)]:
            options = run.sample_options(args.n, torch.Generator().manual_seed(seed), shape=shape,
                                         sampler=sampler, steps=steps,
                                         **grid_for(model, steps, s, formula, shape, base))
            t0 = time.perf_counter()
            x = model.sample(args.n, **options)
            seconds = time.perf_counter() - t0
            labels = options["labels"]
            up = resize_images(x.clamp(*value_range), base[-1])
            score = score_images(up, reference, extractor=extractor, value_range=value_range, labels=labels,
                                 seed=seed, check_range=False)
            rows.append({"seed": seed, "sampler": sampler, "steps": steps, "size": size, "tokens": (size // patch) ** 2, "s": s, "formula_s": formula,
                         "s_over_formula": s / formula, "sample_seconds": seconds, "model": score,
                         "floor": floor_score})
            if (sampler, steps) == solvers[0] and seed == args.seeds[0]:
                examples[(size, s)] = x[:10]  # one of each class: labels cycle through them
            print(f"seed {seed}, {sampler} {steps}, {size} px, s {s:.3f} (formula {formula:.3f}): FD {score['fd']:.1f} (floor "
                  f"{floor_score['fd']:.1f}), label accuracy {score['label_accuracy']:.3f}, {seconds:.1f} s",
                  flush=True)
    record = {"run_dir": str(args.run_dir), "step": run.step, "weights": "raw" if args.raw else "EMA", "n": args.n, "seeds": args.seeds,
              "sampler": cfg.sample.sampler, "steps": cfg.sample.steps, "guidance": cfg.sample.guidance,
              "solvers": [f"{a}:{b}" for a, b in solvers],
              "base_pixels": math.prod(base[1:]), "factors": args.factors, "sizes": sizes, "rows": rows,
              "cpu_capability": machine().get("cpu_capability")}
    print(f"wrote {write_results('sd3_resolution_shift', record, args.out)}")
    if args.figure:
        figure(rows, examples, value_range, Path(args.figure))
        print(f"wrote {args.figure}")


def paired_differences(rows: list[dict], size: int, solver: tuple[str, int]) -> dict[float, list[float]]:
    """For one size and solver: ``s -> [FD(s) - FD(formula's s)]`` with one value per seed, each pair drawn from the
    same noise (a seed's rows share it), so the differences are free of the noise's own spread."""
    mine = [r for r in rows if r["size"] == size and (r["sampler"], r["steps"]) == tuple(solver)]
    out: dict[float, list[float]] = {}
    for seed in dict.fromkeys(r.get("seed", 0) for r in mine):
        rs = [r for r in mine if r.get("seed", 0) == seed]
        base = next(r for r in rs if abs(r["s_over_formula"] - 1) < 1e-6)["model"]["fd"]
        for r in rs:
            out.setdefault(r["s"], []).append(r["model"]["fd"] - base)
    return out


def figure(rows: list[dict], examples: dict, value_range, path: Path) -> None:
    """FD (mean and spread over the seeds) and label accuracy against s / s_formula per size (solid: the first
    solver, dashed: the second), and one sample per class at each (size, s) of the first solver and seed."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    solvers = list(dict.fromkeys((r["sampler"], r["steps"]) for r in rows))
    sizes = sorted({r["size"] for r in rows})
    fig = plt.figure(figsize=(12, 4.2 + (0.9 * len(sizes) if examples else 0)))
    grid = fig.add_gridspec(2 if examples else 1, 2, height_ratios=[3, 0.9 * len(sizes)] if examples else [1])
    ax_fd, ax_acc = fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1])
    every = settings(rows)
    for size in sizes:
        color = None
        for k, solver in enumerate(solvers):
            gs = [g for g in every if g["row"]["size"] == size and (g["row"]["sampler"], g["row"]["steps"]) == solver]
            ratio = [g["row"]["s_over_formula"] for g in gs]
            style = "o-" if k == 0 else "s--"
            label = f"{size} px, {solver[0]} {solver[1]}"
            diff = paired_differences(rows, size, solver)  # s -> FD(s) - FD(formula's s), one per seed
            means = [sum(diff[g["row"]["s"]]) / len(diff[g["row"]["s"]]) for g in gs]
            spans = [(max(diff[g["row"]["s"]]) - min(diff[g["row"]["s"]])) / 2 for g in gs]
            line = ax_fd.errorbar(ratio, means, yerr=spans, fmt=style, color=color, label=label, capsize=2)[0]
            color = line.get_color()
            ax_acc.plot(ratio, [g["acc"] for g in gs], style, color=color, label=label)
            one = [(g["row"]["s_over_formula"], m) for g, m in zip(gs, means) if g["row"]["s"] == 1.0]
            if one:
                ax_fd.plot(*one[0], "kx", ms=9)
    ax_fd.axhline(0.0, color="black", lw=0.6)
    for ax, name in ((ax_fd, "FD minus FD at the formula's s (paired by noise; mean, range over seeds; x: no "
                              "shift)"), (ax_acc, "label accuracy")):
        ax.set_xscale("log")
        ax.axvline(1.0, color="grey", lw=0.8)
        ax.set_xlabel("s / formula's s = sqrt(m / n)")
        ax.set_title(name, fontsize=10)
        ax.legend(fontsize=6, ncol=2)
    if not examples:  # --replot: the scores only, the samples are not in the results file
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        return
    ax_img = fig.add_subplot(grid[1, :])
    lo, hi = value_range
    side = max(sizes)
    strips = []
    for size in sizes:
        cells = []
        for r in [g["row"] for g in every if g["row"]["size"] == size
                  and (g["row"]["sampler"], g["row"]["steps"]) == solvers[0]]:
            x = ((examples[(size, r["s"])].clamp(lo, hi) - lo) / (hi - lo))[:, 0]  # (10, H, W)
            x = resize_images(x[:, None], side)[:, 0] if size != side else x
            x = torch.nn.functional.pad(x, (1, 1, 1, 1), value=0.35)
            cells.append(torch.cat(list(x), dim=1))
            cells.append(torch.full((side + 2, 6), 1.0))
        strips.append(torch.cat(cells, dim=1))
    width = max(s.shape[1] for s in strips)
    strips = [torch.nn.functional.pad(s, (0, width - s.shape[1]), value=1.0) for s in strips]
    ax_img.imshow(torch.cat(strips, dim=0).clamp(0, 1).numpy(), cmap="gray", vmin=0, vmax=1,
                  interpolation="nearest")
    ax_img.set_axis_off()
    ax_img.set_title("a row per size (14 to 35 px, shown at the same scale), a block of ten classes per s, "
                     f"smallest s first ({solvers[0][0]}, {solvers[0][1]} steps)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    main()
