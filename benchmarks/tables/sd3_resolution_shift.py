"""SD3's resolution shift on one multi-resolution DiT (``benchmarks.sd3_resolution_shift``)."""

from __future__ import annotations

from benchmarks.tables.format import clean_table, sig, table


def render(files: dict[str, dict]) -> str:
    """Per size, solver and shift s: FD (the size's floor) and label accuracy; the best FD of each size and solver
    bold, the formula's s and no shift named."""
    d = files["sd3_resolution_shift"]
    header = ["size", "tokens", "solver", "s", "s / formula", "FD (floor)", "label accuracy (floor)",
              f"seconds for {d['n']} samples"]
    out = []
    for size in d["sizes"]:
        for j, solver in enumerate(d["solvers"]):
            rows = [r for r in d["rows"] if r["size"] == size and f"{r['sampler']}:{r['steps']}" == solver]
            best = min(rows, key=lambda r: r["model"]["fd"])
            for i, r in enumerate(rows):
                m, f = r["model"], r["floor"]
                names = [n for n, hit in (("formula", abs(r["s_over_formula"] - 1) < 1e-6),
                                          ("no shift", r["s"] == 1.0)) if hit]
                s = f"{r['s']:.3f}" + (f" ({', '.join(names)})" if names else "")
                fd = f"{sig(m['fd'], 3)} ({sig(f['fd'], 3)})"
                first = i == 0 and j == 0
                out.append([f"{size} x {size} px" if first else "", str(r["tokens"]) if first else "",
                            f"{r['sampler']}, {r['steps']} steps" if i == 0 else "", s, f"{r['s_over_formula']:.2f}",
                            f"**{fd}**" if r is best else fd,
                            f"{m['label_accuracy']:.3f} ({f['label_accuracy']:.3f})", f"{r['sample_seconds']:.0f}"])
    text = clean_table(table(header, out, ["---", "---:", "---", "---", "---:", "---:", "---:", "---:"]))
    return (text + f"\n\nOne seed; {d['n']} samples per row (guidance {d['guidance']:g}; the same noise and labels "
            f"for every s and solver of a size) from the {d.get('weights', 'EMA')} weights at step {d['step']}; "
            f"formula: s = sqrt(m / n), n = {d['base_pixels']} pixels (28 x 28, the model's data shape); FD at "
            f"28 px in the MNIST classifier's features against the test split; floor: {d['n']} training images "
            f"resized to the size and back; best FD of each size and solver in bold; wall seconds on one thread, "
            f"CPU capability {d['cpu_capability']}.")
