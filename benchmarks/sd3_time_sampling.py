"""SD3's training-time distributions, compared at a small budget: uniform against logit-normal ``(m, s)``, mode
sampling with heavy tails and cosine-mapped times.

Esser et al. (2024, arXiv:2403.03206, Sec. 3.1 and 5.1) train rectified flows with ``t = sigmoid(m + s n)``,
``n ~ N(0, 1)``, which spends the training on the middle of the path, and rank it first among their
formulations, ahead of uniform ``t``. Here one DiT is trained with each law, everything else equal: the same
network, steps, batches and seeds. The model is ``configs/dit-mnist.yaml``'s DiT (rotary positions, QK-norm),
unconditional, at size ``tiny`` and patch 2 on the 8 x 8 digits (16 tokens) -- pixel digits, not the latent
Fashion-MNIST model: that model's 300 steps cost 617 s in ``benchmarks.latent_vs_pixel``, so two seeds of four laws
did not fit this budget. Per law and seed it records:

- SD3's validation loss (``train.val_every``; 256 held-out digits, fixed noise, 8 fixed times; the EMA weights)
  along training and at the end: the same fixed times for every law, so it compares them on one yardstick;
- the Fréchet distance of ``--n`` samples (Euler, uniform grid, 10, 25 and 50 steps; the EMA weights) in the pinned
  digits classifier's features (FD, never FID) against the 297 test digits, beside the noise floor (as many
  training digits).

    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python -m benchmarks.sd3_time_sampling --steps 400 --seeds 0 1 2  # ~11 CPU-min
    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.sd3_time_sampling --quick --out /tmp/ts.json   # a smoke run

Rows are kept across calls (``KeyedRows``). Results: benchmarks/results/sd3_time_sampling.json and the figure
sd3-time-sampling.png beside it (``python -m benchmarks.render_tables --print sd3_time_sampling``).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from flowforge.config import load_config
from flowforge.data import load_dataset
from flowforge.jobs.image_eval import image_extractor
from flowforge.metrics import load_extractor, reference_features, score_images
from flowforge.runs import load_run, read_metrics
from flowforge.train import train

from benchmarks.harness import RESULTS, KeyedRows, atomic_write_json, figure_path, pyplot, save_figure, write_results

NAME = "sd3_time_sampling"
PRESET = "configs/dit-mnist.yaml"
# law -> the model.* settings that make it (SD3's names: rf = uniform, rf/lognorm(m, s))
LAWS = {
    "uniform": ["model.time_sampler=uniform"],
    "lognorm(0, 1)": ["model.time_sampler=logit-normal", "model.logit_mean=0.0", "model.logit_std=1.0"],
    "lognorm(0.5, 0.6)": ["model.time_sampler=logit-normal", "model.logit_mean=0.5", "model.logit_std=0.6"],
    "lognorm(-0.5, 1)": ["model.time_sampler=logit-normal", "model.logit_mean=-0.5", "model.logit_std=1.0"],
    "mode(1.29)": ["model.time_sampler=mode", "model.mode_scale=1.29"],  # SD3 eq. 20, heavy tails
    "cosmap": ["model.time_sampler=cosmap"],  # SD3 eq. 21
}
GRIDS = (10, 25, 50)


def config(law: str, seed: int, steps: int, run_dir: Path):
    return load_config(PRESET, [
        f"run.dir={run_dir}", f"run.seed={seed}", "data.name=digits", "model.num_classes=null",
        "model.net.size=tiny", "model.net.patch=2", *LAWS[law], f"train.steps={steps}", "train.warmup_steps=50",
        "train.precision=auto", "train.log_every=50", f"train.val_every={max(steps // 4, 1)}", "train.sample_every=0",
        f"train.ckpt_every={steps}", "train.tensorboard=false", "sample.steps=4", "sample.guidance=1.0"])


class Scorer:
    """FD of image sets in the pinned digits classifier against the test split, as ``flowforge eval`` takes it."""

    def __init__(self, dataset):
        self.dataset = dataset
        self.extractor = load_extractor(image_extractor(dataset))
        self.value_range = tuple(dataset.value_range)
        self.reference = reference_features(dataset.test, dataset=dataset.name, split="test",
                                            extractor=self.extractor, value_range=self.value_range)

    def fd(self, images: torch.Tensor) -> float:
        n = len(images)
        return score_images(images, self.reference, extractor=self.extractor, value_range=self.value_range,
                            seed=0, kd_min_subsets=max(1, min(10, n // 2)), k=min(3, n - 1), check_range=False)["fd"]


def one_run(law: str, seed: int, steps: int, n: int, scorer: Scorer) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        start = time.perf_counter()
        train(config(law, seed, steps, run_dir), progress=False)
        seconds = time.perf_counter() - start
        run = load_run(run_dir)  # the EMA weights
        fds = {}
        for k in GRIDS:
            with torch.no_grad():
                gen = torch.Generator().manual_seed(1000 + seed)  # the same noise for every law
                samples = run.model.sample(n, **run.sample_options(n, gen, sampler="euler", steps=k, grid="uniform"))
            fds[str(k)] = scorer.fd(samples)
        val = [[r["step"], r["loss"]] for r in read_metrics(run_dir) if r.get("kind") == "val_loss"]
    return {"law": law, "seed": seed, "steps": steps, "n": n, "train_seconds": seconds, "fd": fds,
            "val_curve": val, "val_loss": val[-1][1]}


def draw(rows: list[dict], path: str) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    laws = list(dict.fromkeys(r["law"] for r in rows))
    for i, law in enumerate(laws):
        mine = [r for r in rows if r["law"] == law]
        colour = plt.cm.tab10(i)
        for j, r in enumerate(mine):
            axes[0].plot(*zip(*r["val_curve"]), color=colour, lw=1.2, label=law if j == 0 else None)
            axes[1].plot([int(k) for k in r["fd"]], list(r["fd"].values()), "o-", color=colour, lw=1.2,
                         label=law if j == 0 else None)
    axes[0].set(xlabel="training step", ylabel="validation loss (8 fixed t)", title="SD3 validation loss, per seed")
    axes[1].set(xlabel="Euler steps", ylabel="FD (digits classifier)", xscale="log", title="FD, per seed")
    axes[1].minorticks_off()  # the log axis's minor labels (2 x 10^1, ...) crowd the three step counts
    axes[1].set_xticks(list(GRIDS), [str(k) for k in GRIDS])
    axes[0].legend(fontsize=8)
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--n", type=int, default=500, help="samples per FD")
    parser.add_argument("--laws", nargs="+", default=list(LAWS), choices=list(LAWS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--quick", action="store_true", help="20 steps, 50 samples, two laws: a smoke run")
    parser.add_argument("--out", default=None, help=f"results file (default benchmarks/results/{NAME}.json)")
    parser.add_argument("--figure", default=None, help="figure file ('' for none; default beside the results)")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.n, args.laws, args.seeds = 20, 50, ["uniform", "lognorm(0, 1)"], [0]
    out = Path(args.out) if args.out else RESULTS / f"{NAME}.json"
    dataset = load_dataset(config("uniform", 0, 1, Path("unused")).data)
    scorer = Scorer(dataset)
    protocol = {"preset": PRESET, "steps": args.steps, "n": args.n, "grids": list(GRIDS)}
    partial = out.with_suffix(".partial.json")  # rows so far; the results file is written complete, once
    rows = KeyedRows(partial if partial.is_file() else out, protocol)
    keys = [{"law": law, "seed": s} for s in args.seeds for law in args.laws]
    for key in keys:
        rows.get_or_compute(key, lambda key=key: one_run(key["law"], key["seed"], args.steps, args.n, scorer))
        atomic_write_json(partial, {**protocol, "rows": rows.pending(keys)})  # a kill loses no finished row
        print(f"{key}: FD {rows.rows[-1]['fd']} val {rows.rows[-1]['val_loss']:.4f}", flush=True)
    floor = scorer.fd(dataset.train[torch.randperm(len(dataset.train), generator=torch.Generator().manual_seed(2))
                                    [:args.n]])
    write_results(NAME, {**protocol, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                         "model": ("DiT-tiny/2 (4 blocks, width 64, 4 heads), unconditional, rotary, QK-norm, "
                                   "digits 8x8"),
                         "batch_size": 64, "sampler": "euler, uniform grid", "noise_floor_fd": floor,
                         "rows": rows.rows}, out)
    partial.unlink(missing_ok=True)
    figure = figure_path(args.figure, args.out, "sd3-time-sampling.png")
    if figure:
        draw(rows.rows, figure)


if __name__ == "__main__":
    main()
