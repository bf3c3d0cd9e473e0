"""EMA schedules against run length (``benchmarks.ema_run_length``)."""

from __future__ import annotations

from benchmarks.tables.format import bold_min, sig, table


def render(files: dict[str, dict]) -> str:
    """Energy distance of the raw weights and of each EMA schedule after runs of several lengths; the best
    weights per run bold."""
    data = files["ema_run_length"]
    variants = ["raw weights", *data["variants"]]
    rows = []
    for case in data["cases"].values():
        r = case["rows"]
        values = [r[v]["energy_distance"] for v in variants]
        cells = [sig(v, 2) if v < 0.01 else f"{v:.3f}" for v in values]
        rows.append([f"{case['preset']}, {case['steps']} steps", *bold_min(cells, values),
                     sig(r["noise floor"]["energy_distance"], 2), sig(r["matched Gaussian"]["energy_distance"], 2)])
    return table(["run", *variants, "noise floor", "matched Gaussian"], rows, ["---"] + ["---:"] * (len(variants) + 2))
