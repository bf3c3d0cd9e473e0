"""SD3's resolution shift on one multi-resolution DiT (``benchmarks.sd3_resolution_shift``)."""

from __future__ import annotations

from benchmarks.tables.format import sig, table


def render(files: dict[str, dict]) -> str:
    """Per size and shift s: FD (the size's floor) and label accuracy; the best s of each size bold, the formula's
    s and no shift named."""
    d = files["sd3_resolution_shift"]
    header = ["size", "tokens", "s", "s / formula", "FD (floor)", "label accuracy (floor)",
              f"seconds for {d['n']} samples"]
    out = []
    for size in d["sizes"]:
        rows = [r for r in d["rows"] if r["size"] == size]
        best = min(rows, key=lambda r: r["model"]["fd"])
        for i, r in enumerate(rows):
            m, f = r["model"], r["floor"]
            names = [n for n, hit in (("formula", abs(r["s_over_formula"] - 1) < 1e-6), ("no shift", r["s"] == 1.0))
                     if hit]
            s = f"{r['s']:.3f}" + (f" ({', '.join(names)})" if names else "")
            fd = f"{sig(m['fd'], 3)} ({sig(f['fd'], 3)})"
            out.append([f"{size} x {size} px" if i == 0 else "", str(r["tokens"]) if i == 0 else "", s,
                        f"{r['s_over_formula']:.2f}", f"**{fd}**" if r is best else fd,
                        f"{m['label_accuracy']:.3f} ({f['label_accuracy']:.3f})", f"{r['sample_seconds']:.0f}"])
    text = table(header, out, ["---", "---:", "---", "---:", "---:", "---:", "---:"])
    text = "\n".join(line.replace("|  |", "| |") for line in text.splitlines())
    return (text + f"\n\nOne seed; {d['n']} samples per row ({d['sampler']}, {d['steps']} steps, guidance "
            f"{d['guidance']:g}, the same noise and labels for every s of a size) from the EMA weights at step "
            f"{d['step']}; formula: s = sqrt(m / n), n = {d['base_pixels']} pixels (28 x 28, the model's data "
            f"shape); FD at 28 px in the MNIST classifier's features against the test split; floor: {d['n']} "
            f"training images resized to the size and back; best FD of each size in bold; CPU capability "
            f"{d['cpu_capability']}.")
