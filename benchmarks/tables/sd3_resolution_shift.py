"""SD3's resolution shift on one multi-resolution DiT (``benchmarks.sd3_resolution_shift``)."""

from __future__ import annotations

import statistics

from benchmarks.tables.format import clean_table, sig, table


def settings(rows: list[dict]) -> list[dict]:
    """One entry per (solver, size, s), in the file's order, with its seeds' FD and label accuracy averaged: ``fd``,
    ``fd_std`` (0 for one seed), ``acc``, ``floor_fd``, ``floor_acc``, ``seconds`` (per seed), ``seeds`` and the
    first seed's row as ``row``. A file written before ``--seeds`` (one seed, no ``seed`` key) reads the same."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["sampler"], r["steps"], r["size"], r["s"]), []).append(r)
    out = []
    for rs in groups.values():
        fds = [r["model"]["fd"] for r in rs]
        out.append({"row": rs[0], "seeds": len(rs), "fd": statistics.fmean(fds),
                    "fd_std": statistics.stdev(fds) if len(fds) > 1 else 0.0,
                    "acc": statistics.fmean(r["model"]["label_accuracy"] for r in rs),
                    "floor_fd": statistics.fmean(r["floor"]["fd"] for r in rs),
                    "floor_acc": statistics.fmean(r["floor"]["label_accuracy"] for r in rs),
                    "seconds": statistics.fmean(r["sample_seconds"] for r in rs)})
    return out


def render(files: dict[str, dict]) -> str:
    """Per size, solver and shift s: FD (the size's floor) and label accuracy, averaged over the seeds with FD's
    spread; the best FD of each size and solver bold, the formula's s and no shift named."""
    d = files["sd3_resolution_shift"]
    seeds = d.get("seeds", [d.get("seed", 0)])
    spread = len(seeds) > 1
    header = ["size", "tokens", "solver", "s", "s / formula", "FD ± sd (floor)" if spread else "FD (floor)",
              "label accuracy (floor)", f"seconds for {d['n']} samples"]
    every = settings(d["rows"])
    out = []
    for size in d["sizes"]:
        for j, solver in enumerate(d["solvers"]):
            group = [g for g in every if g["row"]["size"] == size
                     and f"{g['row']['sampler']}:{g['row']['steps']}" == solver]
            best = min(group, key=lambda g: g["fd"])
            for i, g in enumerate(group):
                r = g["row"]
                names = [n for n, hit in (("formula", abs(r["s_over_formula"] - 1) < 1e-6),
                                          ("no shift", r["s"] == 1.0)) if hit]
                s = f"{r['s']:.3f}" + (f" ({', '.join(names)})" if names else "")
                fd = sig(g["fd"], 3) + (f" ± {sig(g['fd_std'], 2)}" if spread else "") + f" ({sig(g['floor_fd'], 3)})"
                first = i == 0 and j == 0
                out.append([f"{size} x {size} px" if first else "", str(r["tokens"]) if first else "",
                            f"{r['sampler']}, {r['steps']} steps" if i == 0 else "", s, f"{r['s_over_formula']:.2f}",
                            f"**{fd}**" if g is best else fd,
                            f"{g['acc']:.3f} ({g['floor_acc']:.3f})", f"{g['seconds']:.0f}"])
    text = clean_table(table(header, out, ["---", "---:", "---", "---", "---:", "---:", "---:", "---:"]))
    who = (f"{len(seeds)} seeds ({', '.join(map(str, seeds))}): mean and sample standard deviation over them, each "
           f"seed its own noise and floor images" if spread else "One seed")
    return (text + f"\n\n{who}; {d['n']} samples per row and seed (guidance {d['guidance']:g}; the same noise and "
            f"labels for every s and solver of a size) from the {d.get('weights', 'EMA')} weights at step "
            f"{d['step']}; formula: s = sqrt(m / n), n = {d['base_pixels']} pixels (28 x 28, the model's data "
            f"shape); FD at 28 px in the MNIST classifier's features against the test split; floor: {d['n']} "
            f"training images resized to the size and back; best mean FD of each size and solver in bold; wall "
            f"seconds per seed on one thread, CPU capability {d['cpu_capability']}.")
