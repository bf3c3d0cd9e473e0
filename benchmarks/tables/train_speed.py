"""bf16 autocast against fp32 training speed per CPU capability and case (``benchmarks.train_speed``)."""

from __future__ import annotations

import re
import shlex

from benchmarks.tables.format import clean_table, sig, table


def _without_label(command: str) -> str:
    """A train_speed command without its ``--label`` (a name for the table, not a setting of the measurement)."""
    words = shlex.split(command)
    if "--label" in words:
        i = words.index("--label")
        del words[i:i + 2]
    return shlex.join(words)


def _split_command(command: str) -> tuple[str, str, str]:
    """``(prefix, script, rest)`` of a command without its label: the script is ``train_speed.py`` (as recorded
    before benchmarks became a package) or ``benchmarks.train_speed``."""
    parts = re.split(r"(train_speed\.py|benchmarks\.train_speed)", _without_label(command), maxsplit=1)
    return (parts[0], parts[1], parts[2]) if len(parts) == 3 else (parts[0], "", "")


def _rate(steps_per_sec: float) -> str:
    """Steps/s with one decimal, two significant digits below 1 (0.56, not 0.6)."""
    return f"{steps_per_sec:.1f}" if steps_per_sec >= 1 else sig(steps_per_sec, 2)


def render(files: dict[str, dict]) -> str:
    """bf16 autocast against fp32: one row per (CPU capability, case); native-bf16 CPUs first."""
    by_capability = files["train_speed"]["by_capability"]
    order = sorted(by_capability, key=lambda c: not by_capability[c]["mkldnn_bf16_supported"])
    rows, prefixes = [], set()
    for capability in order:
        entry = by_capability[capability]
        kind = "native" if entry["mkldnn_bf16_supported"] else "emulated"
        for i, case in enumerate(entry["cases"].values()):
            cpu = f"{capability}, bf16 {kind}: {case['machine']['cpu']}, {case['date'][:10]}" if i == 0 else ""
            # later rows of the same prefix (env + interpreter + script) abbreviate it to "..."
            prefix, script, rest = _split_command(case["command"])
            command = f"... {rest.strip()}" if prefix in prefixes and rest.strip() else prefix + script + rest
            prefixes.add(prefix)
            rows.append([cpu, case["label"], f"`{command}`", _rate(case["fp32_steps_per_sec"]),
                         _rate(case["bf16_steps_per_sec"]), f"**{case['bf16_over_fp32']:.2f}x**"])
    return clean_table(table(["CPU (torch capability)", "bf16 autocast vs fp32 training", "command",
                              "fp32 steps/s", "bf16 steps/s", "**bf16 / fp32**"], rows, ["---"] * 3 + ["---:"] * 3))
