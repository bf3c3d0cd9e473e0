"""The same class-conditional DiT in latent space and in pixel space on Fashion-MNIST, at equal training steps.

The latent model is ``configs/dit-fashion-latent.yaml`` on the 4-channel autoencoder of
``benchmarks.latent_channels`` (``--autoencoder``; 4 x 7 x 7 latents, 49 tokens of patch 1); the pixel model the
same DiT on the 28 x 28 images at patch 2 (196 tokens). Both train ``--steps`` steps of batch 64 and are scored by
``flowforge eval`` (FD and label accuracy of ``--n`` samples in the pinned Fashion-MNIST CNN, dpm++2m 20 steps,
guidance 2), the latent one beside its reconstruction floor; step time and tokens per image are recorded. The
autoencoder's own training is reported by ``benchmarks.latent_channels``, the encoding here.

    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python -m benchmarks.latent_vs_pixel --steps 300 --n 500

Results: benchmarks/results/latent_vs_pixel.json (``python -m benchmarks.render_tables --print latent_vs_pixel``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from flowforge.config import load_config
from flowforge.jobs import evaluate
from flowforge.runs import latest_checkpoint
from flowforge.train import train

from benchmarks.harness import command_line, write_results
from benchmarks.tables import latent_vs_pixel as table

PRESET = "configs/dit-fashion-latent.yaml"


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


def run(name: str, overrides: list[str], steps: int, n: int, root: Path) -> dict:
    run_dir, seconds = train_dit(name, overrides, steps, n, root)
    record = evaluate(run_dir)
    image = record["image"]
    out = {"train_seconds": seconds, "fd": image["model"]["fd"], "label_accuracy": image["model"].get("label_accuracy"),
           "floor_fd": image["noise_floor"]["fd"], "sample_seconds": record["sample_seconds"],
           "parameters": record["parameters"], "steps": steps, "n": image["n_samples"]}
    if image.get("reconstruction_floor"):
        out["reconstruction_fd"] = image["reconstruction_floor"]["fd"]
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--n", type=int, default=500, help="samples scored")
    p.add_argument("--autoencoder", default="runs/bench-latent/ae-4")
    p.add_argument("--root", default="runs/bench-latent")
    args = p.parse_args(argv)
    root = Path(args.root)
    t = time.perf_counter()
    rows = {"latent": run("dit-latent", [f"data.latent={args.autoencoder}", "model.net.patch=1"], args.steps,
                          args.n, root)}
    rows["latent"]["tokens"] = 49
    rows["pixel"] = run("dit-pixel", ["data.latent=null", "model.net.patch=2"], args.steps, args.n, root)
    rows["pixel"]["tokens"] = 196
    record = {"command": command_line(argv), "preset": PRESET, "autoencoder": args.autoencoder, "rows": rows,
              "seconds": time.perf_counter() - t}
    path = write_results("latent_vs_pixel", record)
    print(table.render({"latent_vs_pixel": record}))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
