"""bf16 autocast against float32: one DiT training step's time, side by side in one process.

The model is configs/dit-mnist.yaml's (class-conditional rectified flow, 2-D rotary positions, QK-norm,
logit-normal t) at its batch of 64 MNIST-shaped images (28 px, patch 2: 196 tokens), in two sizes: ``tiny``
(0.3 M parameters) and ``small`` (the preset's, 1.9 M). One step is what the engine does per step: the loss
(under ``torch.autocast("cpu", torch.bfloat16)`` for bf16, as Accelerate wraps the forward), backward, AdamW
(fused, the engine's). Rounds are interleaved (fp32 then bf16, then the other order) so that load on a shared
machine hits both alike; each precision first takes one warm-up step. The figure is the ratio of median step
times, with the CPU capability it ran on: bf16 is native on AVX512-BF16 / AMX and emulated on AVX2.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python -m benchmarks.bf16_dit            # ~4 minutes on AVX2
    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.bf16_dit --quick --out /tmp/x.json   # a smoke run
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from flowforge.config import load_config
from flowforge.models import build_model
from flowforge.rng import BatchRandom
from flowforge.train.precision import native_bf16

from benchmarks.harness import RESULTS, write_results

NAME = "bf16_dit"
PRESET = "configs/dit-mnist.yaml"


def make(size: str, batch: int, pixels: int, seed: int = 0):
    """The preset's model at ``size``, its optimizer and one batch of images in [-1, 1] with labels."""
    cfg = load_config(PRESET, [f"model.net.size={size}"])
    torch.manual_seed(seed)
    model = build_model(cfg.model, {"shape": [1, pixels, pixels], "kind": "images"}).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr, fused=True)
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, 1, pixels, pixels, generator=gen) * 2 - 1
    return model, optimizer, x, torch.randint(0, 10, (batch,), generator=gen)


def step_seconds(model, optimizer, x, labels, bf16: bool, seed: int) -> float:
    rng = BatchRandom(torch.Generator().manual_seed(seed), len(x), 0, len(x))
    start = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss = model.loss(x, rng, labels)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def measure(size: str, batch: int, pixels: int, rounds: int) -> dict:
    # one model per precision, from the same seed: a step changes the weights, so neither runs on the other's
    runs = {precision: make(size, batch, pixels) for precision in ("fp32", "bf16")}
    times: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for precision, parts in runs.items():  # warm-up: first-call allocations and kernel selection
        step_seconds(*parts, bf16=precision == "bf16", seed=0)
    for r in range(rounds):
        order = ("fp32", "bf16") if r % 2 == 0 else ("bf16", "fp32")
        for precision in order:
            times[precision].append(step_seconds(*runs[precision], bf16=precision == "bf16", seed=r + 1))
    fp32, bf16 = statistics.median(times["fp32"]), statistics.median(times["bf16"])
    print(f"{size}: fp32 {fp32:.3f} s/step, bf16 {bf16:.3f} s/step, bf16 takes {bf16 / fp32:.2f}x the time",
          flush=True)
    parameters = sum(p.numel() for p in runs["fp32"][0].parameters())
    return {"parameters": parameters, "batch": batch, "pixels": pixels, "rounds": rounds,
            "fp32_median_step_s": fp32, "bf16_median_step_s": bf16,
            "bf16_time_over_fp32": bf16 / fp32, "bf16_speed_over_fp32": fp32 / bf16,
            "fp32_step_s": times["fp32"], "bf16_step_s": times["bf16"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["tiny", "small"])
    parser.add_argument("--batch", type=int, default=64, help="images per step (the preset's train.batch_size)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="tiny only, batch 4, 16 px, 2 rounds: a smoke run")
    parser.add_argument("--out", default=str(RESULTS / f"{NAME}.json"))
    args = parser.parse_args()
    sizes, batch, pixels, rounds = ((["tiny"], 4, 16, 2) if args.quick
                                    else (args.sizes, args.batch, 28, args.rounds))
    native, hardware = native_bf16(torch.device("cpu"))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {hardware}")
    rows = {size: measure(size, batch, pixels, rounds) for size in sizes}
    out = write_results(NAME, {"preset": PRESET, "native_bf16": native, "hardware": hardware,
                               "step": "loss (autocast for bf16) + backward + fused AdamW, one process",
                               "rows": rows}, path=args.out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
