"""MeanFlow's settings on an image set beside flow matching at the same budget (``benchmarks.few_step_meanflow``)."""

from __future__ import annotations

from collections.abc import Callable

from benchmarks.tables.format import clean_table, sig, table

COLUMNS = (("mean-flow 1", "FD 1 step"), ("mean-flow 2", "FD 2 steps"), ("euler 100", "FD field, 100 Euler"))


def sweep(sources: tuple[str, ...]) -> Callable[[dict[str, dict]], str]:
    """The rows of ``sources`` together (variants trained by separate calls, each to its own file)."""
    return lambda files: _sweep({"rows": [r for k in sources for r in files[k]["rows"]]})


def _sweep(record: dict) -> str:
    """Per training budget (sample count and overrides, e.g. another ``run.seed``) and variant: FD at 1 and 2 MeanFlow steps and of the instantaneous
    field at 100 Euler steps, one step's ratio to flow matching's 100 Euler steps at the same budget, the engine's
    training seconds; each budget closes with its floor (as many training images) and the matched Gaussian."""
    rows = []
    key = lambda r: (r["settings"]["steps"], r["settings"]["n"], tuple(r["settings"].get("overrides", [])))  # noqa: E731
    for steps, n, overrides in dict.fromkeys(key(r) for r in record["rows"]):
        mine = [r for r in record["rows"] if key(r) == (steps, n, overrides)]
        label = f"{steps}" + (f", {' '.join(overrides)}" if overrides else "")
        fm = next((r["euler 100"]["fd"] for r in mine if r["variant"] == "flow matching"), None)
        for r in mine:
            one = r.get("mean-flow 1", {}).get("fd")
            rows.append([label, r["variant"], *(sig(r[k]["fd"], 3) if k in r else "" for k, _ in COLUMNS),
                         f"{one / fm:.1f}x" if one and fm else "",
                         f"{r['train_seconds']:.0f}" if r.get("train_seconds") else ""])
        last = mine[-1]["euler 100"]
        rows.append([label, f"floor ({n} training images) / matched Gaussian", "", "",
                     f"{sig(last['floor'], 3)} / {sig(last['gaussian'], 3)}", "", ""])
    header = ["steps", "training", *(h for _, h in COLUMNS), "1 step / FM 100", "train s"]
    return clean_table(table(header, rows, ["---:", "---"] + ["---:"] * 5))
