"""Samples of one multi-resolution model at each of its training resolutions, drawn and scored.

``configs/dit-mnist-multires.yaml`` trains one class-conditional DiT on MNIST packed at 14, 21 and 28 px. For
each resolution this draws ``--n`` samples (labels cycling through the classes, the run's sampler and guidance;
``shape`` set to that size, so the sampler's time grid gets SD3's resolution shift where the run's grid has one),
writes one grid per resolution into a figure (a row per class), and scores the samples in the pinned MNIST
classifier's features: each set is resized to 28 px (bilinear, as the data option resizes) and scored against the
test split; the floor is ``--n`` training images taken down to the same resolution and back, the same resizing
the samples go through, so the floor carries the resolution's own loss of detail.

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.multires_grids runs/dit-mnist-multires
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from flowforge.data import load_dataset
from flowforge.data.packing import resize_images
from flowforge.metrics import default_extractor, load_extractor, reference_features, score_images
from flowforge.runs import load_run

from benchmarks.harness import figure_path, machine, write_results


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--n", type=int, default=500, help="samples scored per resolution")
    ap.add_argument("--per-class", type=int, default=8, help="samples per class in the figure")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--figure", default=None,
                    help="the grids' figure (default dit-multires.png beside --out; '' for none; "
                         "`make docs-figures` copies the default one into docs/)")
    ap.add_argument("--out", default=None, help="results JSON (default benchmarks/results/multires_grids.json)")
    args = ap.parse_args(argv)
    args.figure = figure_path(args.figure, args.out, "dit-multires.png")
    if args.per_class < 1:
        ap.error(f"--per-class {args.per_class}: the figure needs at least one sample per class")
    run = load_run(args.run_dir)
    cfg = run.config
    if not cfg.data.resolutions:
        ap.error(f"{args.run_dir}: not a multi-resolution run (its data.resolutions is empty); train one with "
                 f"`flowforge train configs/dit-mnist-multires.yaml`")
    if not cfg.model.num_classes:
        ap.error(f"{args.run_dir}: the figure has a row per class and the run is not class-conditional")
    if args.n < cfg.model.num_classes * args.per_class:
        ap.error(f"--n {args.n} is fewer than {cfg.model.num_classes} classes x --per-class {args.per_class}; "
                 f"raise --n or lower --per-class")
    dataset = load_dataset(dataclass_without_resolutions(cfg.data))
    extractor = load_extractor(default_extractor(dataset.name, dataset.shape))
    value_range = tuple(dataset.value_range)
    reference = reference_features(dataset.test, dataset=dataset.name, split="test", extractor=extractor,
                                   value_range=value_range)
    classes = cfg.model.num_classes
    pick = torch.randperm(len(dataset.train), generator=torch.Generator().manual_seed(args.seed + 1))[:args.n]
    rows, grids = [], {}
    for size in cfg.data.resolutions:
        shape = (dataset.shape[0], size, size)
        options = run.sample_options(args.n, torch.Generator().manual_seed(args.seed), shape=shape)
        t0 = time.perf_counter()
        x = run.model.sample(args.n, **options)
        seconds = time.perf_counter() - t0
        labels = options["labels"]
        grids[size] = torch.stack([x[labels == c][:args.per_class] for c in range(classes)])
        up = resize_images(x.clamp(*value_range), dataset.shape[-1])
        floor = resize_images(resize_images(dataset.train[pick], size), dataset.shape[-1])
        score = score_images(up, reference, extractor=extractor, value_range=value_range, labels=labels,
                             seed=args.seed, check_range=False)
        floor_score = score_images(floor, reference, extractor=extractor, value_range=value_range,
                                   labels=dataset.train_labels[pick], seed=args.seed)
        rows.append({"size": size, "tokens": (size // cfg.model.net.patch) ** 2, "sample_seconds": seconds,
                     "model": score, "floor": floor_score})
        print(f"{size} px: FD {score['fd']:.1f} (floor {floor_score['fd']:.1f}), label accuracy "
              f"{score.get('label_accuracy', float('nan')):.3f}, {seconds:.1f} s", flush=True)
    record = {"run_dir": str(args.run_dir), "step": run.step, "n": args.n, "sampler": cfg.sample.sampler,
              "steps": cfg.sample.steps, "guidance": cfg.sample.guidance, "rows": rows,
              "cpu_capability": machine().get("cpu_capability")}
    print(f"wrote {write_results('multires_grids', record, args.out)}")
    if args.figure:
        figure(grids, value_range, Path(args.figure))
        print(f"wrote {args.figure}")


def dataclass_without_resolutions(data_config):
    """The run's data section at its native size (the test split and the reference are 28 px)."""
    import dataclasses
    return dataclasses.replace(data_config, resolutions=None)


def figure(grids: dict[int, torch.Tensor], value_range, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    lo, hi = value_range
    fig, axes = plt.subplots(1, len(grids), figsize=(4.2 * len(grids), 5.2), squeeze=False)
    for ax, (size, g) in zip(axes[0], grids.items()):
        g = ((g.clamp(lo, hi) - lo) / (hi - lo))[:, :, 0]  # (classes, per_class, H, W)
        g = torch.nn.functional.pad(g, (1, 1, 1, 1), value=0.35)  # a grey frame around each sample
        picture = torch.cat([torch.cat(list(row), dim=1) for row in g], dim=0)
        ax.imshow(picture.numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(f"{size} x {size} px", fontsize=10)
        ax.axis("off")
    fig.suptitle("one DiT, packed multi-resolution training: a row per class", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
