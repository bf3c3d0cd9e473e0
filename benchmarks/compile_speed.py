"""Does ``torch.compile`` pay on this machine? A preset's network trained and sampled eagerly and compiled.

For each model (a preset's network, batch and data), the same initial weights are trained in a hand-written loop
(``model.loss``, ``backward``, fused AdamW) and sampled (``--sample-steps`` Euler steps of ``--sample-n`` points,
no grad), once with the network as built (``eager``) and once after ``net.compile()`` (``compiled``: TorchInductor,
``nn.Module.compile`` so the state dict keeps its keys). Reported: the compile time (first call, training and
sampling separately), and the steady-state time per step / per sampling run as the median over interleaved rounds
whose first contender rotates; the ratio is the median of the rounds' ratios, so load on this shared machine
hits both alike. Writes ``benchmarks/results/compile_speed.json``.

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.compile_speed                      # MNIST and digits U-Nets
    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.compile_speed --models demo-mlp --rounds 3
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
from benchmarks.harness import machine, write_results
from benchmarks.engine_overhead import Bare

MODELS = {  # key: (preset, label)
    "mnist-unet": ("fm-mnist-cpu", "MNIST U-Net (fm-mnist-cpu), batch 64"),
    "digits-unet": ("fm-digits", "digits U-Net (fm-digits), batch 100"),
    "demo-mlp": ("rf-checkerboard", "demo MLP 4x256 (rf-checkerboard), batch 512"),
}


class Contender(Bare):
    """engine_overhead's bare loop with fused AdamW, its network compiled or not, and a fixed sampling run."""

    def __init__(self, preset: str, compiled: bool, sample_n: int, sample_steps: int):
        super().__init__(preset, fused=True, overrides=["train.precision=fp32"])
        if compiled:
            self.model.net.compile()
        self.noise = torch.randn((sample_n, *self.model.shape), generator=torch.Generator().manual_seed(1))
        self.sample_steps = sample_steps

    def train_ms(self, steps: int) -> float:
        t0 = time.perf_counter()
        for _ in range(steps):
            self.step()
        return 1000.0 * (time.perf_counter() - t0) / steps

    @torch.no_grad()
    def sample_s(self) -> float:
        t0 = time.perf_counter()
        self.model.sample(len(self.noise), sampler="euler", steps=self.sample_steps, noise=self.noise)
        return time.perf_counter() - t0


def measure(key: str, rounds: int, steps: int, sample_n: int, sample_steps: int) -> dict:
    preset, label = MODELS[key]
    contenders = {}
    first = {}
    for name, compiled in (("eager", False), ("compiled", True)):
        c = Contender(preset, compiled, sample_n, sample_steps)
        t0 = time.perf_counter()
        c.step()  # compiles the forward and backward graphs
        train_first = time.perf_counter() - t0
        t0 = time.perf_counter()
        c.sample_s()  # compiles the no-grad graph
        first[name] = {"train_first_s": train_first, "sample_first_s": time.perf_counter() - t0}
        contenders[name] = c
        print(f"{key} {name}: first step {train_first:.1f} s, first sampling run {first[name]['sample_first_s']:.1f} s",
              flush=True)
    train, sample = {n: [] for n in contenders}, {n: [] for n in contenders}
    for r in range(rounds):
        order = list(contenders)[r % 2:] + list(contenders)[:r % 2]
        for name in order:
            train[name].append(contenders[name].train_ms(steps))
            sample[name].append(contenders[name].sample_s())
        print(f"{key} round {r}: " + "  ".join(f"{n} {train[n][-1]:.1f} ms/step {sample[n][-1]:.2f} s/sample"
                                               for n in contenders), flush=True)
    ratio = lambda d: statistics.median(c / e for c, e in zip(d["compiled"], d["eager"]))  # noqa: E731
    return {"label": label, "preset": preset, "rounds": rounds, "steps_per_round": steps, "sample_n": sample_n,
            "sample_steps": sample_steps, "first": first,
            "train_ms": {n: statistics.median(v) for n, v in train.items()},
            "sample_s": {n: statistics.median(v) for n, v in sample.items()},
            "train_ratio": ratio(train), "sample_ratio": ratio(sample)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["mnist-unet", "digits-unet"], choices=list(MODELS))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=10, help="training steps per round")
    ap.add_argument("--sample-n", type=int, default=256)
    ap.add_argument("--sample-steps", type=int, default=10)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    record = {"models": {}, "threads": torch.get_num_threads(),
              "cpu_capability": machine().get("cpu_capability")}
    for key in args.models:
        record["models"][key] = measure(key, args.rounds, args.steps, args.sample_n, args.sample_steps)
        r = record["models"][key]
        print(f"{key}: train compiled/eager {r['train_ratio']:.3f}, sample {r['sample_ratio']:.3f}", flush=True)
    print(f"wrote {write_results('compile_speed', copy.deepcopy(record), args.out)}")


if __name__ == "__main__":
    main()
