"""SDPA against naive attention: time and memory per length (``benchmarks.attention_memory``)."""

from __future__ import annotations

from benchmarks.tables.format import clean_table, table


def render(files: dict[str, dict]) -> str:
    """SDPA (flowforge's attend) against naive softmax(QK^T)V: step time and peak memory growth per length."""
    data = files["attention_memory"]
    rows = []
    for r in data["rows"]:
        sd, nv = r["sdpa"], r.get("naive")
        rows.append([f"{r['length']:,}", f"{1000 * sd['median_s']:.0f}", f"{sd['peak_growth_mb']:.0f}",
                     f"{1000 * nv['median_s']:.0f}" if nv else "not run", f"{nv['peak_growth_mb']:.0f}" if nv else "",
                     f"**{nv['peak_growth_mb'] / max(sd['peak_growth_mb'], 1e-9):.1f}x**" if nv else ""])
    return clean_table(table(["tokens", "SDPA ms", "SDPA MB", "naive ms", "naive MB", "naive / SDPA memory"],
                             rows, ["---:"] * 6))
