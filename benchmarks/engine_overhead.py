"""The training engine's step time against the same model in a bare PyTorch loop and against its matmuls alone.

For each model (a preset's network, batch and data), in interleaved rounds whose first contender rotates, so that
load on this shared machine hits all alike:

- ``engine``: ``flowforge.train.train`` for ``--steps`` steps (learning-rate schedule, gradient clipping, EMA,
  per-example random streams, divergence guard, logging); its time per step is the rate of the last logged
  window, which covers the steps only (no setup, checkpoint or picture);
- ``bare``: the same network (same config, same initial weights) in the loop a user writes with PyTorch alone:
  batch, ``model.loss(x)``, ``backward``, ``AdamW.step`` (torch's default implementation, the per-parameter loop
  on CPU), ``zero_grad``; mean ms per step over the second half of its steps, as the engine's window;
- ``bare, fused AdamW``: the same with ``AdamW(fused=True)``, the fastest plain loop;
- ``matmul``: the step's own matrix multiplications and convolutions (forward and backward: ``aten.mm``,
  ``addmm``, ``bmm``, ``convolution``, ``convolution_backward``, recorded from one step with their shapes and
  replayed alone on fresh tensors), the floor a step cannot go below without faster kernels; with the step's
  FLOPs (``torch.utils.flop_counter``), the throughput they reach.

Reports the median time of each contender over rounds, and each ratio (engine / bare, bare / matmul) as the
median over rounds of that round's ratio: within a round the contenders run moments apart, so the load of this
shared machine cancels. Each round's figure is a mean over steps, like the engine's logged rate. Writes
``benchmarks/results/engine_overhead.json`` (one entry per model key, so runs of one model keep the others).

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.engine_overhead                          # demo MLP, ~3 min
    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.engine_overhead --models digits-unet --steps 40
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from flowforge.config import load_config
from flowforge.data import load_dataset
from flowforge.models import build_model
from flowforge.train import train

from benchmarks.harness import RESULTS, ROOT, write_results

NAME = "engine_overhead"
MODELS = {  # key: (preset, label, overrides)
    "demo-mlp": ("rf-checkerboard", "demo MLP 4x256 (rf-checkerboard), batch 512", []),
    # rf-moons' network until 9fdc807 (it is 3x128 since), kept so the table's row can be rerun
    "moons-mlp": ("rf-moons", "MLP 3x256 (rf-moons), batch 256", ["model.net.width=256"]),
    "digits-unet": ("fm-digits", "digits U-Net (fm-digits), batch 100", []),
}
MATMUL_OPS = ("mm", "addmm", "bmm", "convolution", "convolution_backward")


def engine_ms(preset: str, steps: int, overrides: list[str]) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(ROOT / "configs" / f"{preset}.yaml",
                          [*overrides, f"run.dir={tmp}/run", f"train.steps={steps}", f"train.log_every={steps // 2}",
                           f"train.ckpt_every={steps}", "train.sample_every=0", "train.tensorboard=false",
                           "train.warmup_steps=0"])
        train(cfg, progress=False)
        last = json.loads((Path(tmp) / "run/metrics.jsonl").read_text().splitlines()[-1])
    return 1000.0 / last["steps_per_sec"]


class Bare:
    """The preset's network, data and batch size in a hand-written loop."""

    def __init__(self, preset: str, fused: bool, overrides: list[str]):
        cfg = load_config(ROOT / "configs" / f"{preset}.yaml", overrides)
        dataset = load_dataset(cfg.data)
        torch.manual_seed(cfg.run.seed)
        self.model = build_model(cfg.model, dataset.spec())
        self.data, self.batch = dataset.train, cfg.train.batch_size
        with torch.no_grad():  # the data-dependent initialisation the engine does too
            self.model.loss(self.data[:self.batch])
        kw = {"fused": True} if fused else {}
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=cfg.train.lr, **kw)
        self.gen = torch.Generator().manual_seed(0)

    def step(self) -> None:
        idx = torch.randint(len(self.data), (self.batch,), generator=self.gen)
        loss = self.model.loss(self.data[idx])
        loss.backward()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)

    def ms(self, steps: int) -> float:
        times = []
        for _ in range(steps):
            t0 = time.perf_counter()
            self.step()
            times.append(time.perf_counter() - t0)
        return 1000.0 * statistics.fmean(times[steps // 2:])  # the steps the engine's last log window covers


class _Record(TorchDispatchMode):
    """Records the matmul / convolution calls of a region with their arguments' shapes."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket.__name__ in MATMUL_OPS:
            spec = torch.utils._pytree.tree_map(
                lambda a: ("T", tuple(a.shape), a.dtype) if isinstance(a, torch.Tensor) else a, (args, kwargs or {}))
            self.calls.append((func, spec))
        return func(*args, **(kwargs or {}))


class Matmuls:
    """One step's matmuls and convolutions, replayed alone; and the step's FLOPs."""

    def __init__(self, bare: Bare):
        with _Record() as rec:
            bare.step()
        gen = torch.Generator().manual_seed(1)

        def fresh(a):
            return torch.randn(a[1], generator=gen, dtype=a[2]) if isinstance(a, tuple) and a and a[0] == "T" else a

        self.calls = [(func, torch.utils._pytree.tree_map(fresh, spec, is_leaf=lambda a: isinstance(a, tuple)
                                                          and len(a) == 3 and a[0] == "T"))
                      for func, spec in rec.calls]
        counter = FlopCounterMode(display=False)
        with counter:
            bare.step()
        self.flops = counter.get_total_flops()
        self.ops = sorted({func.overloadpacket.__name__ for func, _ in self.calls})

    def replay(self) -> None:
        for func, (args, kwargs) in self.calls:
            func(*args, **kwargs)

    def ms(self, reps: int) -> float:
        self.replay()
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            self.replay()
            times.append(time.perf_counter() - t0)
        return 1000.0 * statistics.fmean(times)


def measure(key: str, steps: int, rounds: int) -> dict:
    preset, label, overrides = MODELS[key]
    bare, fused = Bare(preset, False, overrides), Bare(preset, True, overrides)
    matmuls = Matmuls(fused)
    contenders = {"engine": lambda: engine_ms(preset, steps, overrides), "bare": lambda: bare.ms(steps),
                  "bare, fused AdamW": lambda: fused.ms(steps), "matmul": lambda: matmuls.ms(steps)}
    times: dict[str, list[float]] = {k: [] for k in contenders}
    names = list(contenders)
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            times[name].append(contenders[name]())
        print(f"  {key} round {r + 1}/{rounds}: " + ", ".join(f"{k} {v[-1]:.2f} ms" for k, v in times.items()),
              flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}

    def ratio(a: str, b: str) -> float:  # within a round the contenders ran moments apart: the load cancels
        return statistics.median(x / y for x, y in zip(times[a], times[b]))

    params = sum(p.numel() for p in bare.model.parameters())
    record = {"label": label, "preset": preset, "parameters": params, "steps_per_round": steps, "rounds": rounds,
              "ms_per_step": med, "runs_ms": times, "flops_per_step": matmuls.flops, "matmul_ops": matmuls.ops,
              "matmul_calls": len(matmuls.calls),
              "matmul_gflops_per_sec": matmuls.flops / (med["matmul"] / 1000) / 1e9,
              "engine_over_bare": ratio("engine", "bare"),
              "engine_over_bare_fused": ratio("engine", "bare, fused AdamW"),
              "bare_over_matmul": ratio("bare", "matmul"),
              "bare_fused_over_matmul": ratio("bare, fused AdamW", "matmul"),
              "engine_over_matmul": ratio("engine", "matmul")}
    print(f"{key}: engine {med['engine']:.2f} ms, bare {med['bare']:.2f} ms, bare fused {med['bare, fused AdamW']:.2f}"
          f" ms, matmul {med['matmul']:.2f} ms ({record['matmul_gflops_per_sec']:.1f} GFLOP/s); engine / bare "
          f"{record['engine_over_bare']:.3f}, engine / bare fused {record['engine_over_bare_fused']:.3f}, "
          f"bare fused / matmul {record['bare_fused_over_matmul']:.2f}", flush=True)
    return record


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=["demo-mlp"], choices=list(MODELS))
    p.add_argument("--steps", type=int, default=60, help="steps per contender and round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--out", default=str(RESULTS / f"{NAME}.json"))
    args = p.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}")
    out = Path(args.out)
    models = json.loads(out.read_text()).get("models", {}) if out.exists() else {}
    for key in args.models:
        models[key] = {**measure(key, args.steps, args.rounds), "threads": torch.get_num_threads(),
                       "cpu_capability": torch.backends.cpu.get_cpu_capability()}
    path = write_results(NAME, {"about": __doc__.split("\n\n")[0], "models": models}, path=out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
