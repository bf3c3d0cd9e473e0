"""The same class-conditional DiT in latent space and in pixel space on Fashion-MNIST, at equal training steps or
at equal wall-clock.

The latent model is ``configs/dit-fashion-latent.yaml`` on the 4-channel autoencoder of
``benchmarks.latent_channels`` (``--autoencoder``; 4 x 7 x 7 latents, 49 tokens of patch 1); the pixel model the
same DiT on the 28 x 28 images at patch 2 (196 tokens). Both train ``--steps`` steps of batch 64 and are scored by
``flowforge eval`` (FD and label accuracy of ``--n`` samples in the pinned Fashion-MNIST CNN, dpm++2m 20 steps,
guidance 2), the latent one beside its reconstruction floor; step time and tokens per image are recorded. The
autoencoder's own training is reported by ``benchmarks.latent_channels``, the encoding here.

    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python -m benchmarks.latent_vs_pixel --steps 300 --n 500

Results: benchmarks/results/latent_vs_pixel.json (``python -m benchmarks.render_tables --print latent_vs_pixel``).

**Equal wall-clock** (``--minutes M``, the issue's goal: the latent DiT at the pixel DiT's final FD in at most half
its training time): each model's seconds per step are measured first on a throwaway run of ``--calibrate`` steps
(the second half of them timed, under the load the real run will see), and its step budget is set so that its
training takes ``M`` minutes (``pixel``, ``latent``), ``M / 2`` (``latent-half``) or ``M / 4``
(``latent-quarter``); each then trains with the preset's whole recipe (warm-up, cosine decay to that budget,
EMA), so each row is a finished run of its time, not a snapshot of a longer one. The autoencoder
(``--autoencoder``, trained by ``configs/ae-fashion.yaml``) and the encoding of the data into the latent cache are
timed apart and reported, not counted. ``--rows`` with
``--train-only`` lets two processes train rows side by side (one core each, so both see the same load); a last
call without ``--train-only`` scores every row (``--n`` samples each: give the same ``--n`` to every call, since a
run keeps the one it was trained with) and writes ``benchmarks/results/latent_vs_pixel_time.json`` and a
picture of each run's samples, ``benchmarks/results/latent-vs-pixel.png``:

    C="--minutes 24 --n 500 --autoencoder runs/bench-latent/ae-4-disc"  # benchmarks.ae_discriminator's
    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.latent_vs_pixel $C --rows pixel --train-only &
    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.latent_vs_pixel $C --rows latent-quarter latent-half latent \
        --train-only
    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.latent_vs_pixel $C
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import torch

from flowforge.config import load_config
from flowforge.data import load_dataset
from flowforge.data.latents import encode_dataset, pixel_data
from flowforge.jobs import evaluate
from flowforge.runs import latest_checkpoint, read_metrics
from flowforge.train import train

from benchmarks.harness import (RESULTS, ROOT, command_line, flowforge_source, portable, pyplot, read_results,
                                save_figure, training_seconds, write_results)
from benchmarks.tables import latent_vs_pixel as table

PRESET = "configs/dit-fashion-latent.yaml"
PIXEL = ["data.latent=null", "model.net.patch=2"]  # 196 tokens of 2 x 2 pixels
TOKENS = {"pixel": 196, "latent": 49}
# equal wall-clock rows: name -> (space, share of --minutes)
TIMED = {"pixel": ("pixel", 1.0), "latent-quarter": ("latent", 0.25), "latent-half": ("latent", 0.5),
         "latent": ("latent", 1.0)}


def train_dit(name: str, overrides: list[str], steps: int, n: int, root: Path) -> tuple[Path, float | None]:
    """The DiT of :data:`PRESET` with ``overrides``, trained ``steps`` steps into ``root / name`` unless a checkpoint
    is there; its training seconds (None when trained by an earlier call)."""
    run_dir = root / name
    common = [f"run.dir={run_dir}", f"run.name={name}", f"train.steps={steps}", f"train.ckpt_every={steps}",
              "train.sample_every=0", "train.log_every=50", "train.tensorboard=false", "train.warmup_steps=50",
              f"eval.n_samples={n}", "eval.straightness_steps=0", "eval.n_likelihood=20"]
    config = load_config(PRESET, [*overrides, *common])
    seconds = None
    if latest_checkpoint(run_dir) is None:
        t = time.perf_counter()
        train(config, progress=False)
        seconds = time.perf_counter() - t
    return run_dir, seconds


def evaluated(run_dir: Path) -> dict:
    """``flowforge eval`` of ``run_dir``: FD and label accuracy of its samples, the noise floor (and the
    reconstruction floor of a latent run), n, parameters and sampling seconds."""
    record = evaluate(run_dir)
    image = record["image"]
    out = {"fd": image["model"]["fd"], "label_accuracy": image["model"].get("label_accuracy"),
           "floor_fd": image["noise_floor"]["fd"], "sample_seconds": record["sample_seconds"],
           "parameters": record["parameters"], "n": image["n_samples"]}
    if image.get("reconstruction_floor"):
        out["reconstruction_fd"] = image["reconstruction_floor"]["fd"]
    return out


def run(name: str, overrides: list[str], steps: int, n: int, root: Path) -> dict:
    run_dir, seconds = train_dit(name, overrides, steps, n, root)
    return {"train_seconds": seconds, **evaluated(run_dir), "steps": steps}


def seconds_per_step(overrides: list[str], steps: int, root: Path) -> float:
    """Seconds per training step of the DiT of :data:`PRESET` with ``overrides``: a throwaway run of ``steps``
    steps, its second half timed (the first pays for start-up and the allocator's warm-up)."""
    run_dir = root / f"calibration-{os.getpid()}"  # two calls may calibrate at once
    shutil.rmtree(run_dir, ignore_errors=True)
    half = max(1, steps // 2)
    train(load_config(PRESET, [*overrides, f"run.dir={run_dir}", "run.name=calibration", f"train.steps={2 * half}",
                               f"train.log_every={half}", f"train.ckpt_every={2 * half}", "train.sample_every=0",
                               "train.tensorboard=false", f"train.warmup_steps={half}"]), progress=False)
    last = [r for r in read_metrics(run_dir) if "steps_per_sec" in r][-1]
    shutil.rmtree(run_dir, ignore_errors=True)
    return 1.0 / last["steps_per_sec"]


def encode_seconds(autoencoder: str) -> dict:
    """Encode Fashion-MNIST into the latent cache of ``autoencoder`` (nothing when it is there): its seconds."""
    config = load_config(PRESET, [f"data.latent={autoencoder}"])
    t = time.perf_counter()
    data = encode_dataset(load_dataset(pixel_data(config.data)), autoencoder, config.data.cache_dir)
    return {"seconds": time.perf_counter() - t, "images": len(data.train) + len(data.test), "shift": data.shift,
            "scale": data.scale}


def budget_path(run_dir: Path) -> Path:
    """Where an equal-time run's step budget and measured step time are kept: beside the run."""
    return run_dir.with_name(run_dir.name + ".budget.json")


def latent_source(run_dir: Path) -> str | None:
    """The autoencoder a run was trained on (``data.latent``; None in pixel space)."""
    return load_config(run_dir / "config.yaml").data.latent


def train_timed(row: str, args: argparse.Namespace, root: Path) -> Path:
    """Train the equal-time ``row`` (:data:`TIMED`) unless its run is there (on the same autoencoder); its step
    budget and the measured seconds per step go to :func:`budget_path`."""
    space, share = TIMED[row]
    overrides = PIXEL if space == "pixel" else [f"data.latent={args.autoencoder}", "model.net.patch=1"]
    name = f"dit-{row}-{args.minutes:g}min"
    budget_file = budget_path(root / name)
    if latest_checkpoint(root / name) is not None:
        if space == "latent" and latent_source(root / name) != args.autoencoder:
            raise SystemExit(f"{root / name} was trained on {latent_source(root / name)}, not --autoencoder "
                             f"{args.autoencoder}: give another --root or remove it")
    else:
        if space == "latent":
            encoded = encode_seconds(args.autoencoder)
        step_seconds = seconds_per_step(overrides, args.calibrate, root)
        steps = max(1, round(share * args.minutes * 60 / step_seconds))
        budget = {"step_seconds": step_seconds, "steps": steps, "load_before": os.getloadavg()[0],
                  "encode": encoded if space == "latent" else None}
        budget_file.write_text(json.dumps(budget))
        train_dit(name, overrides, steps, args.n, root)
    return root / name


def same_run(scored: dict | None, run_dir: Path) -> bool:
    """Whether ``scored`` (a row of an earlier results file) is of the run now in ``run_dir``: the same run,
    autoencoder, steps and samples scored, so it need not be scored again."""
    if scored is None or scored.get("run") != portable(str(run_dir)) or not budget_path(run_dir).is_file():
        return False
    config = load_config(run_dir / "config.yaml")
    return (scored["steps"] == json.loads(budget_path(run_dir).read_text())["steps"]
            and scored["n"] == config.eval.n_samples and scored.get("autoencoder") == config.data.latent)


def score_timed(row: str, run_dir: Path) -> dict:
    """The scores of an equal-time row's run (``flowforge eval``), its budget, its training's own seconds, and
    the flowforge commit that scored it."""
    space, share = TIMED[row]
    return {"run": portable(str(run_dir)), "space": space, "share": share, "tokens": TOKENS[space],
            "autoencoder": latent_source(run_dir), **evaluated(run_dir), **json.loads(budget_path(run_dir).read_text()),
            "train_seconds": training_seconds(run_dir), "scored_at": flowforge_source().get("commit")}


def equal_time(args: argparse.Namespace, root: Path) -> None:
    """The equal wall-clock comparison (``--minutes``): train the rows asked for, then (unless ``--train-only``)
    score those not scored yet and write them, with the earlier rows of other runs, to ``latent_vs_pixel_time``."""
    runs = {row: train_timed(row, args, root) for row in args.rows}
    if args.train_only:
        return
    earlier = read_results("latent_vs_pixel_time") if (RESULTS / "latent_vs_pixel_time.json").is_file() else {}
    rows = {k: v for k, v in earlier.get("rows", {}).items() if k not in runs}  # rows of runs not asked for stay
    rows.update({row: earlier["rows"][row] if same_run(earlier.get("rows", {}).get(row), run)
                 else score_timed(row, run) for row, run in runs.items()})
    rows = {row: rows[row] for row in TIMED if row in rows}
    record = {"command": command_line(), "preset": PRESET, "minutes": args.minutes, "rows": rows}
    path = write_results("latent_vs_pixel_time", record)
    print(table.render_time({"latent_vs_pixel_time": record}))
    figure = samples_figure({row: ROOT / r["run"] for row, r in rows.items()}, rows, RESULTS / "latent-vs-pixel.png")
    print(f"wrote {path} and {figure}")


@torch.no_grad()
def samples_figure(runs: dict[str, Path], rows: dict[str, dict], path: Path, per_class: int = 4) -> Path:
    """One panel per run: ``per_class`` samples of each class (a column per class), the same noise seed in each,
    decoded for the latent runs; titled with the run's minutes and FD."""
    from flowforge.runs import load_run

    plt = pyplot()
    fig, axes = plt.subplots(1, len(runs), figsize=(3.4 * len(runs), 1.9), squeeze=False)
    for ax, (row, run_dir) in zip(axes[0], runs.items()):
        run = load_run(run_dir)
        options = run.sample_options(10 * per_class, torch.Generator().manual_seed(0))
        x = run.model.sample(10 * per_class, **options).clamp(-1, 1)  # (40, 1, 28, 28), labels 0..9 cycling
        tiles = ((x[:, 0] + 1) / 2).reshape(per_class, 10, 28, 28).permute(0, 2, 1, 3).reshape(per_class * 28, 280)
        ax.imshow(tiles.numpy(), cmap="gray", vmin=0, vmax=1)
        r = rows[row]
        ax.set_title(f"{row}: {r['train_seconds'] / 60:.0f} min, FD {r['fd']:.0f}", fontsize=8)
        ax.axis("off")
    save_figure(fig, path)
    return path


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--n", type=int, default=500, help="samples scored")
    p.add_argument("--autoencoder", default="runs/bench-latent/ae-4")
    p.add_argument("--root", default="runs/bench-latent")
    p.add_argument("--minutes", type=float, help="equal wall-clock instead of equal steps: each row's training "
                                                 "minutes (latent-half: half, latent-quarter: a quarter of them)")
    p.add_argument("--rows", nargs="+", choices=list(TIMED), default=list(TIMED), help="with --minutes")
    p.add_argument("--train-only", action="store_true", help="with --minutes: train the rows, score nothing")
    p.add_argument("--calibrate", type=int, default=40, help="with --minutes: steps of the timing run")
    args = p.parse_args(argv)
    root = Path(args.root)
    if args.minutes is not None:
        return equal_time(args, root)
    t = time.perf_counter()
    rows = {"latent": run("dit-latent", [f"data.latent={args.autoencoder}", "model.net.patch=1"], args.steps,
                          args.n, root)}
    rows["latent"]["tokens"] = 49
    rows["pixel"] = run("dit-pixel", PIXEL, args.steps, args.n, root)
    rows["pixel"]["tokens"] = 196
    record = {"command": command_line(argv), "preset": PRESET, "autoencoder": args.autoencoder, "rows": rows,
              "seconds": time.perf_counter() - t}
    path = write_results("latent_vs_pixel", record)
    print(table.render({"latent_vs_pixel": record}))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
