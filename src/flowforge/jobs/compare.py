"""``flowforge compare``: evaluated runs side by side, one table (markdown and CSV) and one figure.

Each run contributes what its ``eval.json`` scored (run ``flowforge eval`` first), with
its training time, parameter count and sampling cost. Every score is shown beside its
noise floor from the same evaluation, since raw numbers of different data sets or sample
counts do not compare.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import RunError
from ..models import describe_model
from ..runs import read_config, read_metrics
from ..viz import plot_comparison


@dataclass(frozen=True)
class Column:
    """One column of the comparison: its header and how to read it from a run's row (None when absent)."""

    header: str
    key: str
    fmt: str = "{:.4g}"


COLUMNS = (
    Column("run", "run", "{}"), Column("data", "data", "{}"), Column("model", "model", "{}"),
    Column("parameters", "parameters", "{:,}"), Column("steps", "steps", "{:d}"),
    Column("train s", "train_seconds", "{:.0f}"), Column("sampler", "sampler", "{}"), Column("NFE", "nfe", "{:d}"),
    Column("sample s", "sample_seconds", "{:.1f}"), Column("straightness", "straightness", "{:.4g}"),
    Column("n", "n_samples", "{:d}"), Column("bits/dim", "bits_per_dim", "{:.4f}"),
    Column("energy dist.", "energy_distance", "{:.4g}"), Column("(floor)", "energy_floor", "{:.4g}"),
    Column("FD", "fd", "{:.2f}"), Column("(floor)", "fd_floor", "{:.2f}"), Column("(Gaussian)", "fd_gaussian", "{:.2f}"),
    Column("KD", "kd", "{:.4g}"), Column("precision", "precision", "{:.3f}"), Column("recall", "recall", "{:.3f}"),
    Column("label acc.", "label_accuracy", "{:.3f}"), Column("images", "n_images", "{:d}"),
    Column("extractor", "extractor", "{}"),
)


def run_row(run_dir: Path) -> dict[str, Any]:
    """The comparison's row of one evaluated run."""
    ev_path = run_dir / "eval.json"
    if not ev_path.is_file():
        raise RunError(f"{run_dir} has no eval.json; score it first with `flowforge eval {run_dir}`")
    try:
        ev = json.loads(ev_path.read_text())
        config = read_config(run_dir)
        train_rows = [r for r in read_metrics(run_dir) if r.get("kind", "train") == "train"]
        row: dict[str, Any] = {
            "run": run_dir.name, "data": config.data.name, "model": describe_model(config.model),
            "parameters": ev.get("parameters"), "steps": ev["step"],
            "train_seconds": train_rows[-1]["seconds"] if train_rows else None,
            "sampler": ev["sampler"] + (f" x{ev['steps']}" if ev.get("steps") else ""), "nfe": ev.get("nfe"),
            "sample_seconds": ev.get("sample_seconds"), "n_samples": ev["n_reference"],
            "straightness": ev.get("straightness", {}).get("value"),
            "straightness_steps": ev.get("straightness", {}).get("steps"),
            "bits_per_dim": ev.get("likelihood", {}).get("bits_per_dim"),
            "energy_distance": ev["model"]["energy_distance"], "energy_floor": ev["noise_floor"]["energy_distance"],
        }
        image = ev.get("image")
        if image and "skipped" not in image:
            row.update(fd=image["model"]["fd"], fd_floor=image["noise_floor"]["fd"],
                       fd_gaussian=image["matched_gaussian"]["fd"], kd=image["model"]["kd"],
                       precision=image["model"]["precision"], recall=image["model"]["recall"],
                       label_accuracy=image["model"].get("label_accuracy"), extractor=image["extractor"],
                       n_images=image["n_samples"], reference=image["reference"])
        for column in COLUMNS:  # a value of the wrong type (a string score) fails here, not in the table
            if row.get(column.key) is not None:
                column.fmt.format(row[column.key])
    except (KeyError, TypeError, ValueError, AttributeError) as err:  # valid JSON of another shape included
        raise RunError(f"{ev_path} is not an eval record flowforge wrote ({type(err).__name__}: {err}); "
                       f"run `flowforge eval {run_dir}` again") from None
    return row


def compare_runs(run_dirs: list[str | Path], out: str | Path) -> dict[str, Path]:
    """Write ``out``.md, ``out``.csv, ``out``.json (the rows) and ``out``.png comparing ``run_dirs``; return
    the paths by kind."""
    if not run_dirs:
        raise RunError("give at least one run directory to compare")
    rows = [run_row(Path(d)) for d in run_dirs]
    columns = [c for c in COLUMNS if any(r.get(c.key) is not None for r in rows)]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": out.with_suffix(".md"), "csv": out.with_suffix(".csv"), "json": out.with_suffix(".json"),
             "figure": out.with_suffix(".png")}
    paths["markdown"].write_text("\n".join(markdown_table(rows, columns) + caveats(rows)) + "\n")
    paths["json"].write_text(json.dumps({"runs": [str(d) for d in run_dirs], "rows": rows}, indent=1) + "\n")
    with open(paths["csv"], "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([c.key for c in columns])
        writer.writerows([[r.get(c.key, "") if r.get(c.key) is not None else "" for c in columns] for r in rows])
    plot_comparison(rows, paths["figure"])
    return paths


def caveats(rows: list[dict[str, Any]]) -> list[str]:
    """Notes under the table where rows were scored differently: distances are biased by the sample count, and
    scores against different reference sets do not compare at all."""
    notes = []
    for key, what in (("n_samples", "pixel distances"), ("n_images", "image scores"), ("reference", "references"),
                      ("straightness_steps", "straightness steps")):
        values = sorted({str(r[key]) for r in rows if r.get(key) is not None})
        if len(values) > 1:
            notes.append(f"- The runs' {what} differ ({', '.join(values)}): compare each score with its own "
                         f"floor, not across rows.")
    return ["", *notes] if notes else []


def markdown_table(rows: list[dict[str, Any]], columns: list[Column]) -> list[str]:
    def cell(row: dict[str, Any], column: Column) -> str:
        value = row.get(column.key)
        return "-" if value is None else column.fmt.format(value)

    lines = ["| " + " | ".join(c.header for c in columns) + " |",
             "|" + "|".join("---" if c.fmt == "{}" else "---:" for c in columns) + "|"]
    lines += ["| " + " | ".join(cell(r, c) for c in columns) + " |" for r in rows]
    return lines
