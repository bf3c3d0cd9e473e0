"""Build ``src/flowforge/train/bf16_speed.json``, the per-CPU-capability bf16 / fp32 training speed that flowforge's
warning for an explicit ``bf16`` on a CPU without native bf16 quotes, from the benchmark's record
``benchmarks/results/train_speed.json`` (``python -m benchmarks.train_speed`` measures; this tool publishes).

    .venv/bin/python -m tools.bf16_speed_table           # rewrite the package file (`make library-data` runs it)
    .venv/bin/python -m tools.bf16_speed_table --check   # exit 1 if the package file differs from the results
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS_FILE = ROOT / "benchmarks" / "results" / "train_speed.json"
PACKAGE_FILE = ROOT / "src" / "flowforge" / "train" / "bf16_speed.json"
DEMO_CASE = "rf-checkerboard"  # the case the package's warning quotes when a capability has it


def package_summary(record: dict) -> dict:
    """What ``flowforge.train.precision`` reads (``bf16_speed.json``): per capability, native bf16 or not and
    one case's measured bf16 / fp32 speed (the demo MLP's when measured), with its CPU and date."""
    out = {}
    for capability, entry in record["by_capability"].items():
        cases = entry.get("cases", {})
        if not cases:
            continue
        key = DEMO_CASE if DEMO_CASE in cases else next(iter(cases))
        case = cases[key]
        out[capability] = {"capability": capability, "native_bf16": bool(entry["mkldnn_bf16_supported"]),
                           "bf16_over_fp32": case["bf16_over_fp32"], "case": case["label"],
                           "cpu": case.get("machine", {}).get("cpu", "unknown CPU"), "date": case["date"],
                           "command": case.get("command", "")}
    return {"about": "written by tools/bf16_speed_table.py from benchmarks/results/train_speed.json; "
                     "the bf16 warning of flowforge.train.precision quotes it", "by_capability": out}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if the package file is stale")
    args = parser.parse_args(argv)
    text = json.dumps(package_summary(json.loads(RESULTS_FILE.read_text())), indent=1) + "\n"
    if args.check:
        stale = PACKAGE_FILE.read_text() != text
        print(f"{PACKAGE_FILE.relative_to(ROOT)}: {'differs from' if stale else 'agrees with'} "
              f"{RESULTS_FILE.relative_to(ROOT)}")
        return int(stale)
    PACKAGE_FILE.write_text(text)
    print(f"wrote {PACKAGE_FILE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
