"""Training throughput of float32 against bf16 autocast, side by side in one process.

Runs the same config for each precision, alternating them ``--repeats`` times so that
load on this noisy machine hits both alike, and reports median steps/s and the ratio.

    .venv/bin/python benchmarks/train_speed.py                      # the demo's MLP 4x256, batch 512
    .venv/bin/python benchmarks/train_speed.py model.net.width=1024 # a wider MLP
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import torch

from flowforge.config import load_config
from flowforge.train import train


def steps_per_second(config_path: str, overrides: list[str], precision: str, steps: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(config_path, [*overrides, f"run.dir={tmp}/run", f"train.steps={steps}",
                                        f"train.precision={precision}", "train.sample_every=0",
                                        f"train.ckpt_every={steps}", "train.tensorboard=false",
                                        f"train.log_every={steps}", "train.warmup_steps=0"])
        train(cfg, progress=False)
        # the last record's rate covers the steps only (no data loading, checkpoint or picture)
        rows = [json.loads(line) for line in (Path(tmp) / "run/metrics.jsonl").read_text().splitlines()]
        return rows[-1]["steps_per_sec"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--config", default="configs/rf-checkerboard.yaml")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, config {args.config} {' '.join(args.overrides)}")
    rates: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for _ in range(args.repeats):
        for precision in rates:
            rates[precision].append(steps_per_second(args.config, args.overrides, precision, args.steps))
    fp32, bf16 = statistics.median(rates["fp32"]), statistics.median(rates["bf16"])
    print(f"float32: {fp32:.1f} steps/s  (runs: {', '.join(f'{r:.1f}' for r in rates['fp32'])})")
    print(f"bf16:    {bf16:.1f} steps/s  (runs: {', '.join(f'{r:.1f}' for r in rates['bf16'])})")
    print(f"bf16 / float32 throughput: {bf16 / fp32:.2f}x")


if __name__ == "__main__":
    main()
