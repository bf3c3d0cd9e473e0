"""Sample quality against NFE per sampler (``benchmarks.nfe_curve``, ``benchmarks.heun_last_step``)."""

from __future__ import annotations

from benchmarks.tables.format import bold_columns, clean_table, short, table


class NfeNotes:
    """The ``[real NFE]`` note of a cell whose sampler spent another NFE than its column's: the table's first
    reads ``[NFE n]``, later ones ``[n]``."""

    def __init__(self):
        self.first = True

    def __call__(self, nfe: int) -> str:
        note, self.first = (f" [NFE {nfe}]" if self.first else f" [{nfe}]"), False
        return note


def snapped(rows: list[dict], targets: list[int]) -> list[dict | None]:
    """Per target NFE, ``{"value", "nfe"}``: the energy distance of samples on the data levels (``_snapped``;
    the ODE end points where a run has no snapped column), or None where the row is missing."""
    by_nfe = {r["target_nfe"]: r for r in rows}
    out = []
    for t in targets:
        r = by_nfe.get(t)
        value = None if r is None else r.get("energy_distance_snapped", r.get("energy_distance"))
        out.append(None if value is None else {"value": value, "nfe": r["nfe"], "target": t})
    return out


def nfe_row(points: list[dict | None], notes: NfeNotes) -> tuple[list[str], list[float | None]]:
    """Cells ``value [real NFE]`` and the values, for ``bold_min``."""
    cells = ["" if p is None else short(p["value"]) + (notes(p["nfe"]) if p["nfe"] != p["target"] else "")
             for p in points]
    return cells, [None if p is None else p["value"] for p in points]


GRID_NAMES = {"karras": "Karras"}


def nfe_curve_digits(files: dict[str, dict]) -> str:
    """Energy distance (snapped to the data levels) against NFE for each digits run and sampler.

    NFE 2 is left out; a sampler whose cells equal euler's everywhere (DDIM on the linear and EDM paths) is
    left out; the best sampler per column is bold up to NFE 16, beyond which every sampler sits between the noise
    floor and the matched Gaussian (the README's text)."""
    targets, bold_up_to = [4, 8, 16, 32, 64], 16
    rows, notes = [], NfeNotes()
    for run in files["nfe_curve"]["runs"]:
        by_sampler = {}
        for r in run["rows"]:
            by_sampler.setdefault(r["sampler"], []).append(r)
        points = {s: snapped(rs, targets) for s, rs in by_sampler.items()}
        shown = {s: [p and short(p["value"]) for p in ps] for s, ps in points.items()}
        keep = [s for s in points if s == "euler" or shown[s] != shown.get("euler")]
        block, values = [], []
        for s in keep:
            cells, vals = nfe_row(points[s], notes)
            block.append(["", s, *cells])
            values.append([None, None, *vals])
        bold_columns(block, values, [2 + i for i, t in enumerate(targets) if t <= bold_up_to])
        block[0][0] = f"{run['name']} ({GRID_NAMES.get(run['grid'], run['grid'])})"
        rows += block
    header = ["run (grid)", "sampler", f"NFE ≈ {targets[0]}", *map(str, targets[1:])]
    return clean_table(table(header, rows, ["---", "---"] + ["---:"] * len(targets)))


def nfe_curve_mnist(files: dict[str, dict]) -> str:
    """Energy distance (snapped) against NFE on fm-mnist-cpu. Heun's rows name their last step to ``t = 0``
    (rows without ``last_step`` predate ``sample.last_step``, when it was Heun's); where that was Heun's, the
    Euler-last-step variant of ``heun_last_step.py`` follows, its ``k`` steps in the column of NFE ``2 k``. The
    best per column bold."""
    run = files["nfe_curve_mnist"]["runs"][0]
    targets = sorted({r["target_nfe"] for r in run["rows"]})
    rows, values, notes = [], [], NfeNotes()
    for s in dict.fromkeys(r["sampler"] for r in run["rows"]):
        mine = [r for r in run["rows"] if r["sampler"] == s]
        was = mine[0].get("last_step", "heun") if s == "heun" else None
        label = s if was is None else f"heun, {was.capitalize()} last step" + \
            (" (the default before `sample.last_step`)" if was == "heun" else "")
        labelled = [(label, snapped(mine, targets))]
        if was == "heun":
            last = [{"target_nfe": 2 * r["steps"], "nfe": r["nfe"], "energy_distance": r["energy_distance"]}
                    for r in files["heun_last_step"]["rows"] if r["euler_last_step"]]
            labelled.append(("heun, Euler last step (the default now; `benchmarks/heun_last_step.py`)",
                             snapped(last, targets)))
        for label, points in labelled:
            cells, vals = nfe_row(points, notes)
            rows.append([label, *cells])
            values.append([None, *vals])
    bold_columns(rows, values, list(range(1, len(targets) + 1)))
    header = ["sampler", f"NFE {targets[0]}", *map(str, targets[1:])]
    return clean_table(table(header, rows, ["---"] + ["---:"] * len(targets)))
