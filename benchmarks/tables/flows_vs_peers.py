"""RealNVP against normflows and zuko (``benchmarks.flows_vs_peers``)."""

from __future__ import annotations

from benchmarks.tables.format import table


def render(files: dict[str, dict]) -> str:
    """RealNVP on moons against normflows and zuko: medians over repeats."""
    summary = files["flows_vs_peers"]["summary"]
    rows = []
    for name, s in summary.items():
        late = "" if s["reached_flowforge_time"] else "*"  # finished before flowforge's time: its final NLL
        rows.append([name, f"{s['params']:,}", f"{s['median_ms_per_step']:.1f}", f"{s['ratio_to_flowforge']:.2f}",
                     f"{s['final_test_nll']:.3f}", f"{s['nll_at_flowforge_time']:.3f}{late}"])
    return table(["library", "parameters", "ms / step", "step time vs flowforge",
                  "test NLL (nats, 5000 fresh points)", "NLL at flowforge's wall-clock"], rows,
                 ["---"] + ["---:"] * 5)
