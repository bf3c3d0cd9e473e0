"""NICE on MNIST: the held-out log-likelihood curve of a run beside the paper's figure, beside the 20-epoch run of
the same recipe and beside the run made before the scaling layer's data-dependent start
(``model.flow.scaling_init: zero``, the paper's start).

Reads ``RUN/metrics.jsonl`` (``kind: val`` records: held-out log-likelihood in nats per image, NICE's protocol,
logged every ``train.eval_every`` steps; training records carry the engine's training seconds) and, if present,
``RUN/eval.json`` (the full test set). The zero-start curve is the one measured at commit fb1ff10 (20 epochs,
53 min on one thread, test LL 1761.6 on all 10 000 test images), as that commit's README tabulated it; it is
kept here as data because re-running it costs the 53 minutes again (``flowforge train configs/nice-mnist.yaml
model.flow.scaling_init=zero train.steps=6000 train.eval_every=500 train.eval_examples=2000`` reproduces it). So is
the 20-epoch run of the data-dependent start with a cosine decay (commit 40d57b4, ``configs/nice-mnist.yaml`` with
``train.steps=6000``: 37.8 min, test LL 1972.5 on all 10 000 test images).

Writes ``benchmarks/results/nice_curve.json`` and the figure ``benchmarks/results/nice-mnist-curves.png``.

    .venv/bin/python -m benchmarks.nice_curve runs/nice-mnist
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

from benchmarks.harness import RESULTS, write_results

PAPER_LL = 1980.50  # Dinh et al., 2015, Table 2 (MNIST, logistic prior)
# commit fb1ff10's run (scaling from zero): held-out LL on 2000 test images at each epoch (300 steps of 200)
ZERO_START = {"commit": "fb1ff10", "minutes": 53, "test_ll": 1761.6, "test_ll_stderr": 3.3,
              "epochs": [1.7, 3.3, 5, 6.7, 8.3, 10, 11.7, 13.3, 15, 16.7, 18.3, 20],
              "held_out_ll": [-742, -359, 4, 335, 626, 870, 1075, 1255, 1410, 1551, 1667, 1767]}
# commit 40d57b4's run (data-dependent start, cosine decay over 20 epochs): held-out LL and training minutes
COSINE_20 = {"commit": "40d57b4", "minutes": 37.8, "test_ll": 1972.5, "test_ll_stderr": 5.0,
             "epochs": [1.7, 3.3, 5, 6.7, 8.3, 10, 11.7, 13.3, 15, 16.7, 18.3, 20],
             "held_out_ll": [1518.2, 1672.6, 1772.1, 1836.1, 1880.9, 1915.9, 1940.4, 1959.4, 1971.8, 1979.2, 1982.8,
                             1983.5],
             "training_minutes": [3.1, 6.7, 9.9, 13.1, 16.1, 19.2, 22.2, 25.5, 28.9, 31.8, 34.8, 37.8]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--steps-per-epoch", type=int, default=300, help="60000 images / batch 200")
    parser.add_argument("--figure", type=Path, default=RESULTS / "nice-mnist-curves.png",
                        help="the figure (the docs show it: `make docs-figures` copies it there)")
    parser.add_argument("--out", default=str(RESULTS / "nice_curve.json"))
    args = parser.parse_args()
    rows = [json.loads(line) for line in (args.run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    seconds = {r["step"]: r["seconds"] for r in rows if r.get("kind", "train") == "train" and "seconds" in r}
    curve = [{"step": r["step"], "epoch": r["step"] / args.steps_per_epoch, "held_out_ll": r["log_likelihood"],
              "stderr": r.get("nll_stderr"), "n": r.get("n"), "seconds": seconds.get(r["step"])}
             for r in rows if r.get("kind") == "val"]
    if not curve:
        raise SystemExit(f"{args.run_dir}/metrics.jsonl has no held-out records: train with train.eval_every > 0")
    passed = next((c for c in curve if c["held_out_ll"] >= PAPER_LL), None)
    eval_path = args.run_dir / "eval.json"
    test = json.loads(eval_path.read_text()).get("likelihood") if eval_path.is_file() else None
    config = (args.run_dir / "config.yaml").read_text()
    epochs = yaml.safe_load(config)["train"]["steps"] / args.steps_per_epoch
    train_seconds = seconds[max(seconds)] if seconds else None  # the engine's clock at the last logged step
    record = {"run_dir": str(args.run_dir), "config": config, "epochs": epochs, "train_seconds": train_seconds,
              "paper_ll": PAPER_LL, "curve": curve,
              "first_above_paper": passed, "test": test, "zero_start": ZERO_START, "cosine_20_epochs": COSINE_20}
    path = write_results("nice_curve", record, args.out)

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.plot([c["epoch"] for c in curve], [c["held_out_ll"] for c in curve], "-o", ms=3,
            label=f"scaling from the first batch, cosine over {epochs:g} epochs")
    if abs(epochs - COSINE_20["epochs"][-1]) > 0.5:
        ax.plot(COSINE_20["epochs"], COSINE_20["held_out_ll"], "-^", ms=3,
                label=f"the same over 20 epochs (commit {COSINE_20['commit']})")
    ax.plot(ZERO_START["epochs"], ZERO_START["held_out_ll"], "--s", ms=3,
            label=f"scaling from zero (commit {ZERO_START['commit']})")
    ax.axhline(PAPER_LL, color="k", lw=0.8, label=f"the paper's test LL ({PAPER_LL})")
    ax.set_ylim(-800, 2200)
    ax.set_xlabel("epoch (300 steps of batch 200)")
    ax.set_ylabel("held-out log-likelihood (nats / image)")
    ax.set_title("NICE on MNIST, 2000 held-out test images")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(args.figure, dpi=110)
    print(f"wrote {path} and {args.figure}")
    for c in curve:
        t = f"{c['seconds'] / 60:5.1f} min" if c["seconds"] is not None else "    -    "
        print(f"step {c['step']:5d}  epoch {c['epoch']:5.1f}  {t}  held-out LL {c['held_out_ll']:8.1f}")


if __name__ == "__main__":
    main()
