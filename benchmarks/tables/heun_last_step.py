"""Heun with a Heun or an Euler last step (``benchmarks.heun_last_step``)."""

from __future__ import annotations

from collections.abc import Callable

from benchmarks.tables.format import clean_table, table


def heun_last_step(name: str) -> Callable[[dict[str, dict]], str]:
    """Energy distance of Heun with a Heun or an Euler last step to t = 0, per run and number of steps
    (``heun_last_step.py`` on several runs: ``by_run``)."""
    return lambda files: _heun_last_step(files[name]["by_run"])


def _heun_last_step(runs: dict[str, dict]) -> str:
    steps = sorted({r["steps"] for run in runs.values() for r in run["rows"]})
    rows = []
    for name, run in runs.items():
        for last in ("heun", "euler"):
            got = {r["steps"]: r for r in run["rows"] if r["last_step"] == last}
            cells = [f"{got[k]['energy_distance']:.4f} [{got[k]['nfe']}]" if k in got else "" for k in steps]
            rows.append([f"{name} ({run['n']} samples)" if last == "heun" else "", f"`{last}`", *cells])
    return clean_table(table(["run", "last step", *(f"{k} steps [NFE]" for k in steps)], rows,
                             ["---", "---"] + ["---:"] * len(steps)))
