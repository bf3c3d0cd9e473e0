"""Inpainting, measured: every family on NICE's masks, scored by the pinned MNIST classifier and extractor.

For each trained MNIST run given (``--run LABEL=RUN_DIR``, EMA weights where kept) and each of its methods
(:data:`METHODS`, by family), fill the same ``--n`` test images under each mask of NICE's inpainting figure
(:data:`flowforge.data.masks.PAPER_MASKS`: top, bottom, odd, even, left, right, middle-vertical,
middle-horizontal, random:0.75, random:0.9; Dinh et al., 2015, §5.2, Fig. 6) and score the fills:

- ``accuracy``: the share of filled images that the pinned MNIST classifier (the ``mnist`` extractor of
  :mod:`flowforge.metrics`, sha256-pinned) assigns to the original's label;
- ``rmse``: the root mean square error of the filled pixels against the originals, on the missing pixels only,
  in [0, 1] pixel units;
- ``fd``: the Fréchet distance of the filled set against the 10 000 test images in the classifier's features
  (biased upwards at small n: compare it with the floors at the same n);
- ``seconds per image``: the wall-clock time of ``model.inpaint`` on the batch of n, divided by n;
- for normalizing flows, ``log p`` of the fills and of the originals under the same model (nats per image, at
  the bins' centres): the test of step 2 of issue 32 (fills above the originals: the optimiser found the
  model's preference; below: the optimiser stopped short of it).

Beside them, per mask, the floors: the classifier on the masked image with the missing part set to the training
set's mean image, and on the originals (their rmse is 0 and their FD the noise floor at n).

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.inpaint --run NICE=runs/ip-nice-mnist --n 50

Results: ``benchmarks/results/inpaint_<label>.json``, one file per run (rows keyed by the weights, method, options
and mask, so a second call scores only what is missing); the docs' tables: ``python -m benchmarks.render_tables
--print inpaint_accuracy`` (and ``inpaint_rmse``, ``inpaint_fd``).
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

import torch

from flowforge.config import DataConfig
from flowforge.data import load_dataset
from flowforge.data.latents import pixel_data
from flowforge.data.masks import PAPER_MASKS, make_mask
from flowforge.jobs.inpaint import start_values
from flowforge.metrics import default_extractor, load_extractor, reference_features, score_images
from flowforge.runs import load_run
from flowforge.runs.pairs import weights_sha256

from benchmarks.harness import RESULTS, KeyedRows, atomic_write_json, write_results

# The methods each family is scored with: label -> keyword arguments of ``model.inpaint``. Flows: the projected
# gradient ascent flowforge had (lr 0.05 on the schedule 100 / (100 + i), no noise), the paper's schedule
# 10 / (100 + i) with its gradient noise, and the ascent with a line search per image (flowforge's default now),
# from uniform noise (the paper's start) or from the training set's mean image (``start``).
# Continuous models: replacement with Heun, and RePaint at about the same number of network calls (50).
FLOW_STEPS = 100
METHODS = {
    "flow": {
        "ascent lr 0.05 (before)": {"steps": FLOW_STEPS, "lr": 0.05, "line_search": False},
        "ascent, paper (lr 0.1, noise 1)": {"steps": FLOW_STEPS, "lr": 0.1, "noise": 1.0, "line_search": False},
        "ascent + line search (now)": {"steps": FLOW_STEPS, "lr": 0.001, "line_search": True},
        "line search from the mean image": {"steps": FLOW_STEPS, "lr": 0.001, "line_search": True,
                                            "start": "mean"},
        "the mean image, no ascent": {"steps": 0, "start": "mean"},  # where that ascent starts: its log p
    },
    "continuous": {
        "replacement, Heun 25": {"sampler": "heun", "steps": 25},
        "RePaint, DDPM 25 x 2": {"sampler": "ddpm", "steps": 25, "resample": 2},
    },
}


def family(run) -> str:
    """``continuous`` for a model that inpaints along a path (it takes a sampler), else ``flow``."""
    return "continuous" if "sampler" in run.model.inpaint_settings else "flow"


def pick(n: int, seed: int, total: int) -> torch.Tensor:
    return torch.randperm(total, generator=torch.Generator().manual_seed(seed))[:n]


def masks_for(names: list[str], shape: tuple[int, ...], n: int, seed: int) -> dict[str, torch.Tensor]:
    """Each mask name's (n, C, H, W) known-pixel masks; a random mask is drawn per image, from ``seed``."""
    out = {}
    for name in names:
        gen = torch.Generator().manual_seed(seed)
        out[name] = torch.stack([make_mask(name, shape, gen) for _ in range(n)])
    return out


class Scorer:
    """The pinned MNIST classifier and extractor, the test set's features, and the images being filled."""

    def __init__(self, n: int, seed: int):
        self.data = load_dataset(DataConfig(name="mnist", image_range="unit"))
        self.extractor = load_extractor(default_extractor("mnist", self.data.shape))
        self.reference = reference_features(self.data.test, dataset="mnist", split="test", extractor=self.extractor,
                                            value_range=(0.0, 1.0))
        self.index = pick(n, seed, len(self.data.test))
        self.x = self.data.test[self.index]  # (n, 1, 28, 28) in [0, 1]
        self.labels = self.data.test_labels[self.index]
        self.mean = self.data.train.mean(0, keepdim=True)  # (1, 1, 28, 28)

    def score(self, filled: torch.Tensor, known: torch.Tensor, seed: int) -> dict:
        """accuracy, rmse on the missing pixels, FD, confidence of ``filled`` (n, 1, 28, 28) in [0, 1]."""
        s = score_images(filled.clamp(0, 1), self.reference, extractor=self.extractor, value_range=(0.0, 1.0),
                         labels=self.labels, seed=seed, check_range=False)
        missing = ~known
        rmse = float(((filled - self.x) ** 2)[missing].mean().sqrt())
        return {"accuracy": s["label_accuracy"], "rmse": rmse, "fd": s["fd"], "confidence": s["confidence"]}

    def floors(self, masks: dict[str, torch.Tensor], seed: int) -> dict:
        out = {"original": self.score(self.x, torch.zeros_like(self.x, dtype=torch.bool), seed)}
        out["original"]["rmse"] = 0.0
        for name, known in masks.items():
            out[f"mean fill: {name}"] = self.score(torch.where(known, self.x, self.mean.expand_as(self.x)), known,
                                                   seed)
        return out


def flow_log_p(model, images: torch.Tensor) -> float:
    """Mean log-density (nats per image) of ``images`` (in the model's data range) at the bins' centres."""
    with torch.no_grad():
        return float(model.log_prob_flow(model.to_flow_input(images)).mean())


def fill_and_score(scorer: Scorer, run, known: torch.Tensor, options: dict, seed: int) -> dict:
    """Fill the scorer's images under ``known`` with ``run``'s model and ``options``; score them."""
    data = load_dataset(pixel_data(run.config.data))
    x = data.test[scorer.index]  # the same images, in the run's data range
    gen = torch.Generator().manual_seed(seed)
    kwargs = dict(options, generator=gen)
    if isinstance(kwargs.get("start"), str):  # the named start, as flowforge inpaint --start takes it
        kwargs["start"] = start_values(kwargs["start"], data)
    t0 = time.perf_counter()
    filled = run.model.inpaint(x, known, **kwargs)
    seconds = time.perf_counter() - t0
    lo, hi = data.value_range
    row = scorer.score((filled - lo) / (hi - lo), known, seed)
    row["seconds_per_image"] = seconds / len(x)
    if family(run) == "flow":
        row["log_p_fill"], row["log_p_original"] = flow_log_p(run.model, filled), flow_log_p(run.model, x)
    return row


def kept_rows(rows: KeyedRows, sha: str) -> list[dict]:
    """This call's rows, then the earlier rows of the same weights that it did not reach (other methods)."""
    return rows.rows + [r for r in rows.find_all({"weights_sha256": sha}) if r not in rows.rows]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, metavar="LABEL=RUN_DIR", help="a trained MNIST run and its label")
    parser.add_argument("--n", type=int, default=50, help="test images filled per mask (default 50)")
    parser.add_argument("--masks", nargs="+", default=list(PAPER_MASKS))
    parser.add_argument("--methods", nargs="+", default=None, help="only these method labels (default: all)")
    parser.add_argument("--flow-steps", type=int, default=FLOW_STEPS, help=f"flows' ascent steps ({FLOW_STEPS})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="default: benchmarks/results/inpaint_<label>.json")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    label, run_dir = args.run.split("=", 1)
    name = "inpaint_" + re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")
    out = Path(args.out or RESULTS / f"{name}.json")
    torch.manual_seed(args.seed)
    scorer = Scorer(args.n, args.seed)
    masks = masks_for(args.masks, scorer.data.shape, args.n, args.seed)
    run = load_run(run_dir)
    run.model.eval()
    sha = weights_sha256(run)
    partial = out.with_suffix(".partial.json")  # the rows of a call that was stopped, if any
    rows = KeyedRows(partial if partial.is_file() else out, {"n": args.n, "seed": args.seed})
    record = {"label": label, "run": run_dir, "step": run.step, "kind": run.config.model.kind,
              "family": family(run), "weights_sha256": sha, "n": args.n, "seed": args.seed, "masks": args.masks,
              "floors": scorer.floors(masks, args.seed)}
    for method, options in METHODS[family(run)].items():
        if args.methods and method not in args.methods:
            continue
        if family(run) == "flow" and options.get("steps"):
            options = {**options, "steps": args.flow_steps}
        for mask, known in masks.items():
            key = {"weights_sha256": sha, "method": method, "mask": mask, "options": options}
            row = rows.get_or_compute(key, lambda: {**key, **fill_and_score(scorer, run, known, options, args.seed)})
            print(label, method, mask, {k: round(v, 3) for k, v in row.items() if isinstance(v, float)}, flush=True)
            atomic_write_json(partial, {**record, "rows": kept_rows(rows, sha)})
    path = write_results(name, {**record, "rows": kept_rows(rows, sha)}, out)
    partial.unlink(missing_ok=True)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
