"""bf16 autocast against fp32 DiT training steps (``benchmarks.bf16_dit``)."""

from __future__ import annotations

from benchmarks.tables.format import table


def render(files: dict[str, dict]) -> str:
    d = files["bf16_dit"]
    rows = [[f"DiT `{size}` ({r['parameters']:,} parameters), batch {r['batch']} at {r['pixels']} px",
             f"{r['fp32_median_step_s']:.2f}", f"{r['bf16_median_step_s']:.2f}",
             f"**{r['bf16_speed_over_fp32']:.2f}x**"] for size, r in d["rows"].items()]
    return table([f"model ({d['hardware']}, 1 thread)", "fp32 s / step", "bf16 autocast s / step",
                  "bf16 speed / fp32"], rows, ["---", "---:", "---:", "---:"])
