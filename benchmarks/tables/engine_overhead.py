"""The engine's training step against a bare PyTorch loop (``benchmarks.engine_overhead``)."""

from __future__ import annotations

from benchmarks.tables.format import table


def render(files: dict[str, dict]) -> str:
    """The engine's step against the bare loop and the step's matmuls alone: medians of interleaved rounds."""
    rows = []
    for m in files["engine_overhead"]["models"].values():
        ms = m["ms_per_step"]
        rows.append([m["label"], f"{m['parameters']:,}", f"{m['threads']}", f"{ms['engine']:.2f}", f"{ms['bare']:.2f}",
                     f"{ms['bare, fused AdamW']:.2f}",
                     f"{ms['matmul']:.2f} ({m['matmul_gflops_per_sec']:.0f} GFLOP/s)",
                     f"**{m['engine_over_bare']:.2f}x**", f"**{m['engine_over_bare_fused']:.2f}x**",
                     f"{m['bare_fused_over_matmul']:.2f}x"])
    return table(["model", "parameters", "threads", "engine ms / step", "bare loop", "bare, fused AdamW",
                  "matmuls alone", "**engine / bare**", "**engine / bare fused**", "bare fused / matmuls"], rows,
                 ["---"] + ["---:"] * 9)
