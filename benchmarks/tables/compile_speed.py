"""torch.compile against eager training and sampling (``benchmarks.compile_speed``)."""

from __future__ import annotations

from benchmarks.tables.format import table


def render(files: dict[str, dict]) -> str:
    d = files["compile_speed"]
    header = ["network", "compile: first training step / first sampling run (s)", "eager ms / step",
              "compiled ms / step", "**training, compiled / eager**", "eager s / sampling run",
              "compiled s / sampling run", "**sampling, compiled / eager**"]
    rows = []
    for r in d["models"].values():
        c = r["first"]["compiled"]
        rows.append([r["label"], f"{c['train_first_s']:.0f} / {c['sample_first_s']:.0f}",
                     f"{r['train_ms']['eager']:.0f}", f"{r['train_ms']['compiled']:.0f}",
                     f"**{r['train_ratio']:.2f}x**", f"{r['sample_s']['eager']:.1f}",
                     f"{r['sample_s']['compiled']:.1f}",
                     f"**{r['sample_ratio']:.2f}x**"])
    return table(header, rows, ["---"] + ["---:"] * (len(header) - 1))
