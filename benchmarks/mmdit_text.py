"""Prompt following of a text-conditioned MMDiT on Fashion-MNIST, on the held-out template and the training ones.

For a run of ``configs/mmdit-fashion-text.yaml`` (default ``runs/mmdit-fashion-text``; its EMA weights, its
training weights, or both: ``--weights ema model``), draw
``--per-class`` samples of every class from the prompt of each template ("a photo of a {name}", ... and the one
held out of training, "a centred picture of a {name}" by default), at every guidance weight in ``--weights``, all
from the same prior draws, so templates differ only in their words. Each sample is classified by the library's
``fashion-mnist`` feature extractor (:mod:`flowforge.metrics`: a CNN trained on Fashion-MNIST's training split,
shipped with flowforge and pinned by its sha256), and scored by

- ``accuracy``: the fraction the classifier assigns to the class named in the prompt;
- ``largest class share``: of the empty caption's (unconditional) samples, the largest share any class gets
  (0.10 is balanced), to show what "not following" looks like.

Yardstick: the classifier's accuracy on the 10 000 test images. The held-out template is followed as well as
the training ones when its accuracy is within the spread of theirs.

Prints a markdown table, writes the numbers to ``--out`` (JSON) and a picture (rows: classes; panels: the
held-out template and the first training template) to ``--figure``.

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.mmdit_text runs/mmdit-fashion-text
"""

from __future__ import annotations

import argparse
import time

import torch

from flowforge.data import load_dataset
from flowforge.data.latents import pixel_data
from flowforge.metrics import load_extractor
from flowforge.runs import load_run, sample_options

from benchmarks.harness import RESULTS, mean_std, pyplot, save_figure, write_results


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", nargs="?", default="runs/mmdit-fashion-text")
    parser.add_argument("--guidance", type=float, nargs="+", default=[1.0, 2.0])
    parser.add_argument("--weights", nargs="+", choices=["ema", "model"], default=["ema"],
                        help="which of the run's weights to score (a short run's EMA may lag its training weights)")
    parser.add_argument("--per-class", type=int, default=50)
    parser.add_argument("--sampler", default=None, help="default: the run's sample.sampler")
    parser.add_argument("--steps", type=int, default=None, help="default: the run's sample.steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(RESULTS / "mmdit_text.json"))
    parser.add_argument("--figure", default=str(RESULTS / "mmdit-text.png"),
                        help="the figure (the docs show it: `make docs-figures` copies it there)")
    return parser.parse_args()


class Scorer:
    """Samples of one caption set, classified: ``predicted`` labels and ``draw``'s samples with their seconds."""

    def __init__(self, args: argparse.Namespace, cfg, extractor, value_range: tuple[float, float], n: int):
        self.args, self.cfg, self.extractor, self.value_range, self.n = args, cfg, extractor, value_range, n

    def predicted(self, x: torch.Tensor) -> torch.Tensor:
        return self.extractor(x, self.value_range, check_range=False).logits.argmax(1)  # (N,)

    def draw(self, model, prompts: list[str], w: float) -> tuple[torch.Tensor, float]:
        opts = sample_options(self.cfg, self.n, torch.Generator().manual_seed(self.args.seed),
                              sampler=self.args.sampler, steps=self.args.steps, guidance=w)
        opts.pop("labels", None)
        t0 = time.perf_counter()
        x = model.sample(self.n, prompts=prompts, **opts)
        return x, time.perf_counter() - t0


def score_weights(scorer: Scorer, which: str, model, captions, labels: torch.Tensor, pictures: dict) -> list[dict]:
    """One row per guidance weight and template for one set of weights; the pictures of the held-out and first
    training template at the largest guidance weight go to ``pictures``."""
    args, k, (lo, hi) = scorer.args, captions.num_classes, scorer.value_range
    rows = []
    for w in args.guidance:
        for j, template in enumerate(captions.templates):
            x, seconds = scorer.draw(model, [captions.caption(int(c), j) for c in labels], w)
            hit = scorer.predicted(x) == labels
            per_class = hit.reshape(k, args.per_class).double().mean(1)
            row = {"weights": which, "guidance": w, "template": template, "heldout": j == captions.heldout,
                   "accuracy": float(hit.double().mean()), "per_class_accuracy": per_class.tolist(),
                   "seconds": seconds}
            rows.append(row)
            if j in (captions.heldout, captions.train_templates[0]) and w == max(args.guidance):
                pictures[f"{template!r}, {which}"] = (
                    ((x - lo) / (hi - lo)).clamp(0, 1).reshape(k, args.per_class, 28, 28)[:, :8])
            print(f"  {which} w = {w:g}  {'held out' if row['heldout'] else 'training'}  {template!r:34}  "
                  f"accuracy {row['accuracy']:.3f}  {seconds:.0f} s", flush=True)
    return rows


def summarise(rows: list[dict], weights: list[str], guidance: list[float]) -> list[dict]:
    """Per weights and guidance weight: the training templates' mean, std and range, and the held-out one."""
    summary = []
    for which in weights:
        for w in guidance:
            mine = [r for r in rows if r["weights"] == which and r["guidance"] == w]
            seen = [r["accuracy"] for r in mine if not r["heldout"]]
            held = [r["accuracy"] for r in mine if r["heldout"]]
            mean, std = mean_std(seen)
            summary.append({"weights": which, "guidance": w, "training_templates_mean": mean,
                            "training_templates_std": std, "training_templates_min": min(seen),
                            "training_templates_max": max(seen), "heldout": held[0] if held else None})
    return summary


def print_summary(result: dict, n: int) -> None:
    print(f"\n{result['sampler']}, {result['steps']} steps, {n} samples per template ({result['per_class']} per "
          f"class), run {result['run']} step {result['step']}; classifier on test images "
          f"{result['classifier_test_accuracy']:.3f}\n")
    print("| weights | guidance w | training templates: mean (min-max) | held-out template |")
    print("|---|---:|---:|---:|")
    for s in result["summary"]:
        held = "-" if s["heldout"] is None else f"{s['heldout']:.3f}"
        print(f"| {s['weights']} | {s['guidance']:g} | {s['training_templates_mean']:.3f} "
              f"({s['training_templates_min']:.3f}-{s['training_templates_max']:.3f}) | {held} |")


def draw_figure(pictures: dict[str, torch.Tensor], k: int, heldout: str | None, title: str, path: str) -> None:
    """One panel per (template, weights): a row of samples per class."""
    fig, axes = pyplot().subplots(1, len(pictures), figsize=(2.8 * len(pictures), 3.6), squeeze=False)
    for ax, (name, imgs) in zip(axes[0], pictures.items()):
        tiles = imgs.permute(0, 2, 1, 3).reshape(k * 28, imgs.shape[1] * 28)  # rows: classes
        ax.imshow(tiles.numpy(), cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"{name}{' (held out)' if name.startswith(repr(heldout)) else ''}", fontsize=7)
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    save_figure(fig, path)


def main() -> None:
    args = parse_args()
    runs = {which: load_run(args.run_dir, ema=which == "ema") for which in args.weights}
    run = next(iter(runs.values()))
    cfg, captions = run.config, getattr(run.model, "captions", None)
    if captions is None:
        raise SystemExit(f"{args.run_dir} has no text input; train configs/mmdit-fashion-text.yaml first")
    extractor = load_extractor("fashion-mnist")
    dataset = load_dataset(pixel_data(cfg.data))  # a latent run's samples are decoded images
    k = captions.num_classes
    n = k * args.per_class
    scorer = Scorer(args, cfg, extractor, run.model.value_range, n)
    test_acc = float((scorer.predicted(dataset.test) == dataset.test_labels).double().mean())
    print(f"classifier accuracy on the {len(dataset.test)} test images: {test_acc:.4f}", flush=True)

    labels = torch.arange(k).repeat_interleave(args.per_class)  # (n,)
    rows, pictures, unconditional = [], {}, {}
    for which, loaded in runs.items():
        x, seconds = scorer.draw(loaded.model, [""] * n, 1.0)  # the empty caption: the unconditional model
        counts = torch.bincount(scorer.predicted(x), minlength=k)
        unconditional[which] = {"largest_class_share": float(counts.max()) / n, "class_histogram": counts.tolist(),
                                "seconds": seconds}
        print(f"  {which} weights, empty caption: largest class share "
              f"{unconditional[which]['largest_class_share']:.3f}  {seconds:.0f} s", flush=True)
        rows += score_weights(scorer, which, loaded.model, captions, labels, pictures)

    result = {"run": args.run_dir, "step": run.step, "train_steps": cfg.train.steps, "weights": list(runs),
              "train_seconds": _train_seconds(run), "sampler": args.sampler or cfg.sample.sampler,
              "steps": args.steps or cfg.sample.steps, "per_class": args.per_class, "seed": args.seed,
              "extractor": extractor.name, "weights_sha256": extractor.weights_sha256,
              "classifier_test_accuracy": test_acc, "heldout_template": captions.templates[captions.heldout]
              if captions.heldout is not None else None, "unconditional": unconditional,
              "summary": summarise(rows, list(runs), args.guidance), "rows": rows}
    write_results("mmdit_text", result, path=args.out)
    print_summary(result, n)
    if pictures:
        draw_figure(pictures, k, result["heldout_template"],
                    f"{cfg.run.name} step {run.step}, w = {max(args.guidance):g}: one row per class", args.figure)
        print(f"\nwrote {args.out} and {args.figure}")


def _train_seconds(run) -> float | None:
    """Training time of the run's checkpoint, from its state."""
    from flowforge.runs import read_state

    return read_state(run.checkpoint).get("seconds")


if __name__ == "__main__":
    main()
