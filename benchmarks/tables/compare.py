"""A ``flowforge compare --out benchmarks/results/NAME`` table (``compare_digits``, ``compare_mnist``, and
``benchmarks.dit_vs_unet``'s)."""

from __future__ import annotations

from collections.abc import Callable

from benchmarks.tables.format import table


def compare_table(name: str) -> Callable[[dict[str, dict]], str]:
    """A ``flowforge compare --out benchmarks/results/NAME`` table: each run's scores beside their floors."""
    def render(files: dict[str, dict]) -> str:
        records = files[name]["rows"]
        labelled = any(r.get("label_accuracy") is not None for r in records)   # a class-conditional run among them
        rows = []
        for r in records:
            def num(key: str, fmt: str) -> str:
                return "-" if r.get(key) is None else fmt.format(r[key])

            rows.append([f"`{r['run']}`", num("parameters", "{:,}"), num("train_seconds", "{:.0f}"),
                         f"{r['sampler']}", num("nfe", "{:d}"), num("bits_per_dim", "{:.3f}"),
                         f"{r['energy_distance'] / r['energy_floor']:.2f}", num("fd", "{:.1f}"),
                         num("fd_floor", "{:.1f}"), num("fd_gaussian", "{:.1f}"), num("precision", "{:.3f}"),
                         num("recall", "{:.3f}")] + ([num("label_accuracy", "{:.3f}")] if labelled else []))
        headers = ["run", "parameters", "train s", "sampler", "NFE", "bits/dim", "energy dist. / floor", "FD",
                   "FD floor", "FD Gaussian", "precision", "recall"] + (["label acc."] if labelled else [])
        return table(headers, rows, ["---"] + ["---:"] * (len(headers) - 1))

    return render
