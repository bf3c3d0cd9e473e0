"""MeanFlow's target against an oracle on 8 Gaussians (``benchmarks.meanflow_oracle``)."""

from __future__ import annotations

from benchmarks.tables.format import clean_table, mean_std, sig, table

COLUMNS = (("meanflow_1", "1 step"), ("meanflow_2", "2 steps"), ("euler_100", "field, 100 Euler steps"),
           ("one_step_map_rmse", "one-step map's RMS distance from the exact map"),
           ("field_rmse", "field's RMS distance from the exact field"))


def cell(rows: list[dict], key: str) -> str:
    values = [r[key] for r in rows if r.get(key) is not None]
    if not values:
        return ""
    mean, std = mean_std(values)
    return sig(mean, 2) + (f" ± {sig(std, 1)}" if len(values) > 1 else "")


def render(files: dict[str, dict]) -> str:
    """One row per budget and target, mean ± sample std over the seeds: energy distance at 1 and 2 MeanFlow steps
    and of the field at 100 Euler steps, and the RMS distances from the exact one-step map and field."""
    out, first = [], None
    for d in files.values():
        rows = d["rows"]
        first = first or d
        for variant in dict.fromkeys(r["variant"] for r in rows):
            rs = [r for r in rows if r["variant"] == variant]
            one_step = variant.startswith("MeanFlow") or variant.startswith("oracle")
            out.append([str(rs[0]["settings"]["steps"]), variant, str(len(rs)),
                        *(cell(rs, key) if one_step or key in ("euler_100", "field_rmse") else ""
                          for key, _ in COLUMNS),
                        f"{sum(r['train_seconds'] for r in rs) / len(rs):.0f}"])
    floors = first["floors"]
    out.append(["", "noise floor / matched Gaussian", "", sig(floors["noise_floor"], 2) + " / "
                + sig(floors["gaussian"], 2), "", "", "", "", ""])
    header = ["steps", "target", "seeds", *(name for _, name in COLUMNS), "training seconds"]
    s = first["rows"][0]["settings"]
    return (clean_table(table(header, out, ["---:", "---", "---:", "---:", "---:", "---:", "---:", "---:", "---:"]))
            + f"\n\nEnergy distance of {s['n']} samples against {s['repeats']} reference draws (mean over the draws), "
              f"then mean ± sample standard deviation over the seeds; {', '.join(s['overrides'])}; exact average "
              f"velocity by {s['substeps']} RK4 steps. Flow matching's rows have no one-step columns: its network "
              f"was not trained on intervals. Minibatch OT learns another coupling's flow, not the independent "
              f"coupling's: its two distances from the exact map and field measure that difference, not an error.")
