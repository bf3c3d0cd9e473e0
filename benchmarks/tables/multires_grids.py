"""One multi-resolution model's samples per resolution (``benchmarks.multires_grids``)."""

from __future__ import annotations

from benchmarks.tables.format import sig, table


def render(files: dict[str, dict]) -> str:
    """One multi-resolution model's samples per resolution, in the MNIST classifier's features after resizing to
    28 px, beside training images taken through the same resizing."""
    d = files["multires_grids"]
    header = ["resolution", "tokens per image", "FD (floor)", "KD", "precision", "recall", "label accuracy (floor)",
              f"seconds for {d['n']} samples"]
    rows = []
    for r in d["rows"]:
        m, f = r["model"], r["floor"]
        rows.append([f"{r['size']} x {r['size']} px", str(r["tokens"]), f"{sig(m['fd'], 3)} ({sig(f['fd'], 3)})",
                     sig(m["kd"], 2), f"{m['precision']:.3f}", f"{m['recall']:.3f}",
                     f"{m['label_accuracy']:.3f} ({f['label_accuracy']:.3f})", f"{r['sample_seconds']:.0f}"])
    return table(header, rows, ["---"] + ["---:"] * (len(header) - 1))
