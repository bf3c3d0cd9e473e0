"""The yardsticks of the image scores: noise floor and matched-Gaussian baseline per data set and sample count.

For each image data set with an extractor of its own (digits, MNIST, Fashion-MNIST), the scores of
``flowforge eval`` (Fréchet distance and kernel distance in the extractor's features, precision /
recall, classifier confidence and label accuracy) for

- the noise floor: n training images against the test split (what a perfect model would score), and
- the matched Gaussian: n draws of a Gaussian with the training images' mean and covariance, clipped,

with the seconds each part took. A model's score means something only beside these two, at the same n.

    OMP_NUM_THREADS=2 .venv/bin/python -m benchmarks.image_metric_floors

Results: benchmarks/results/image_metric_floors.json; the README's table is rendered from it
(``python -m benchmarks.render_tables --print image_metric_floors``).
"""

from __future__ import annotations

import argparse
import time

import torch

from flowforge.config import DataConfig
from flowforge.data import load_dataset
from flowforge.metrics import (default_extractor, load_extractor, matched_gaussian, reference_features,
                               score_images)

from benchmarks.harness import command_line, read_results, write_results
from benchmarks.tables import image_metric_floors

DATASETS = ("digits", "mnist", "fashion-mnist")
KEEP = ("fd", "kd", "kd_stderr", "precision", "recall", "confidence", "label_accuracy", "n_samples", "n_reference",
        "seconds")


def measure(name: str, counts: list[int], seed: int) -> dict:
    dataset = load_dataset(DataConfig(name=name))
    extractor = load_extractor(default_extractor(name, dataset.shape))
    value_range = tuple(dataset.value_range)
    t = time.perf_counter()
    reference = reference_features(dataset.test, dataset=name, split="test", extractor=extractor,
                                   value_range=value_range, cache=False)
    out = {"extractor": extractor.name, "weights_sha256": extractor.weights_sha256, "reference": reference.name,
           "n_reference": len(reference), "reference_seconds": time.perf_counter() - t, "rows": {}}
    lo, hi = value_range
    for n in counts:
        n = min(n, len(dataset.train))
        pick = torch.randperm(len(dataset.train), generator=torch.Generator().manual_seed(seed))[:n]
        rows = {
            "noise_floor": score_images(dataset.train[pick], reference, extractor=extractor, value_range=value_range,
                                        labels=dataset.train_labels[pick], seed=seed),
            "matched_gaussian": score_images(matched_gaussian(dataset.train, n, seed=seed + 1).clamp(lo, hi),
                                             reference, extractor=extractor, value_range=value_range, seed=seed),
        }
        out["rows"][str(n)] = {k: {m: v[m] for m in KEEP if m in v} for k, v in rows.items()}
        print(name, n, {k: round(v["fd"], 2) for k, v in rows.items()}, flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--n", nargs="+", type=int, default=[1000, 5000])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    results = {name: measure(name, args.n, args.seed) for name in args.datasets}
    path = write_results("image_metric_floors", {"command": command_line(), "results": results})
    print(image_metric_floors.render({"image_metric_floors": read_results("image_metric_floors")}))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
