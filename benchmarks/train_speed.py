"""Training throughput of float32 against bf16 autocast, side by side in one process.

Runs the same config for each precision, alternating them ``--repeats`` times so that
load on this noisy machine hits both alike, and reports median steps/s and the ratio.

The result goes to ``benchmarks/results/train_speed.json`` under the CPU's capability
(``torch.backends.cpu.get_cpu_capability()``: bf16 is native with AMX / AVX512-BF16 and emulated on AVX2),
then the case (the config's name and overrides): a run replaces only its own capability's case, so the file
keeps what other machines measured. The per-capability summary that flowforge's bf16 warning quotes,
``src/flowforge/train/bf16_speed.json``, is library data that ``tools/bf16_speed_table.py`` (``make library-data``)
builds from this file; a benchmark never writes into ``src/``. Per case: ``fp32_steps_per_sec``,
``bf16_steps_per_sec`` (medians), ``bf16_over_fp32``, every run's rate and the command.

    OMP_NUM_THREADS=2 .venv/bin/python -m benchmarks.train_speed --steps 100   # the demo's MLP 4x256, batch 512
    OMP_NUM_THREADS=2 .venv/bin/python -m benchmarks.train_speed --config configs/fm-digits.yaml --steps 30 \
        --repeats 2 --label "digits U-Net (0.76 M parameters), batch 100"
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import tempfile
from pathlib import Path

import torch

from flowforge.config import load_config
from flowforge.train import train

from benchmarks.harness import RESULTS, command_line, flowforge_source, machine, write_results

NAME = "train_speed"


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


def case_key(config: str, overrides: list[str]) -> str:
    """``fm-mnist train.batch_size=64``: the config's stem and the overrides, the case's name in the file."""
    return " ".join([Path(config).stem, *overrides])


def merge(previous: dict, capability: str, key: str, case: dict) -> dict:
    """The file's new content: ``previous`` with ``case`` stored (or replaced) under ``capability`` / ``key``.

    Other capabilities and other cases keep their records (each case stores its own date, machine and source).
    A capability whose stored native-bf16 flag differs from this machine's (an AVX512 CPU without AVX512-BF16
    beside one with it) is refused rather than mixed."""
    by_capability = dict(previous.get("by_capability", {}))
    entry = dict(by_capability.get(capability, {}))
    bf16 = case["machine"]["mkldnn_bf16_supported"]
    if entry and entry.get("mkldnn_bf16_supported") != bf16:
        raise SystemExit(f"{capability}: the file's entry has mkldnn_bf16_supported="
                         f"{entry.get('mkldnn_bf16_supported')}, this machine {bf16}; write to another --out")
    entry["mkldnn_bf16_supported"] = bf16
    entry["cases"] = {**entry.get("cases", {}), key: case}
    by_capability[capability] = entry
    return {"about": ABOUT, "by_capability": by_capability}


ABOUT = ("fp32 against bf16 autocast training throughput (steps/s, medians of alternating runs), by "
         "torch.backends.cpu.get_cpu_capability(), then by case (config stem and overrides). "
         "mkldnn_bf16_supported: torch.ops.mkldnn._is_mkldnn_bf16_supported(), native bf16 kernels (AMX or "
         "AVX512-BF16); without them autocast emulates bf16. Each case carries its own date, command, machine "
         "and flowforge source; the top-level ones are those of the file's last write.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--config", default="configs/rf-checkerboard.yaml")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--label", default=None, help="what the case is, for the README table (default: its key)")
    parser.add_argument("--out", default=str(RESULTS / f"{NAME}.json"))
    args = parser.parse_args()
    capability = torch.backends.cpu.get_cpu_capability()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability {capability}, "
          f"config {args.config} {' '.join(args.overrides)}")
    load_before = [round(x, 2) for x in os.getloadavg()]  # the machine's "machine" block, taken after, counts this run
    rates: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for _ in range(args.repeats):
        for precision, runs in rates.items():
            runs.append(steps_per_second(args.config, args.overrides, precision, args.steps))
    fp32, bf16 = statistics.median(rates["fp32"]), statistics.median(rates["bf16"])
    print(f"float32: {fp32:.1f} steps/s  (runs: {', '.join(f'{r:.1f}' for r in rates['fp32'])})")
    print(f"bf16:    {bf16:.1f} steps/s  (runs: {', '.join(f'{r:.1f}' for r in rates['bf16'])})")
    print(f"bf16 / float32 throughput: {bf16 / fp32:.2f}x")

    key = case_key(args.config, args.overrides)
    case = {"label": args.label or key, "source": "measured by benchmarks.train_speed",
            "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"), "command": command_line(),
            "config": args.config, "overrides": args.overrides, "steps": args.steps, "repeats": args.repeats,
            "fp32_steps_per_sec": fp32, "bf16_steps_per_sec": bf16, "bf16_over_fp32": bf16 / fp32,
            "fp32_runs": rates["fp32"], "bf16_runs": rates["bf16"], "load_average_before": load_before,
            "machine": machine(),
            "flowforge_source": flowforge_source()}
    out = Path(args.out)
    previous = json.loads(out.read_text()) if out.exists() else {}
    record = merge(previous, capability, key, case)
    # write_results adds this run's date, command, machine and source at the top: the file's last write
    out = write_results(NAME, record, path=out)
    print(f"wrote {out} ({capability} / {key})")
    if Path(args.out).resolve() == (RESULTS / f"{NAME}.json").resolve():
        print("the package's bf16 table quotes this file: `make library-data` (tools/bf16_speed_table.py) "
              "rewrites src/flowforge/train/bf16_speed.json from it")


if __name__ == "__main__":
    main()
