"""Prompt following of the text MMDiT (``benchmarks.mmdit_text``)."""

from __future__ import annotations

from benchmarks.tables.format import table


def render(files: dict[str, dict]) -> str:
    """Prompt following of the text MMDiT: label accuracy per template (rows) and per weights and guidance weight
    (columns, the training weights' file first, then the EMA's), the held-out template marked, and the training
    templates' mean."""
    records = [files["mmdit_text"], files["mmdit_text_ema"]]
    summaries = [s for record in records for s in record["summary"]]
    columns = [(s["weights"], s["guidance"]) for s in summaries]
    by = {(r["template"], r["weights"], r["guidance"]): r for record in records for r in record["rows"]}
    templates = list(dict.fromkeys(r["template"] for r in records[0]["rows"]))
    rows = []
    for t in templates:
        held = by[(t, *columns[0])]["heldout"]
        name = f"**`{t}` (held out)**" if held else f"`{t}`"
        rows.append([name] + [f"{by[(t, *c)]['accuracy']:.3f}" for c in columns])
    rows.append(["training templates: mean ± std"] + [f"{s['training_templates_mean']:.3f} ± "
                                                       f"{s['training_templates_std']:.3f}" for s in summaries])
    names = {"model": "training weights", "ema": "EMA weights"}
    return table(["prompt template"] + [f"{names[which]}, w = {w:g}" for which, w in columns], rows,
                 ["---"] + ["---:"] * len(columns))


def render_latent(files: dict[str, dict]) -> str:
    """The same MMDiT in pixel and in latent space: per space and guidance weight, the training templates' mean
    accuracy (range), the held-out template's, the unconditional samples' largest class share, and the training
    minutes."""
    rows = []
    for space in ("pixel", "latent"):
        record = files[f"mmdit_text_{space}"]
        share = record["unconditional"]["model"]["largest_class_share"]
        for s in record["summary"]:
            rows.append([space, f"{record['train_seconds'] / 60:.1f}", f"{s['guidance']:g}",
                         f"{s['training_templates_mean']:.3f} ({s['training_templates_min']:.3f}-"
                         f"{s['training_templates_max']:.3f})", f"{s['heldout']:.3f}", f"{share:.3f}"])
    return table(["space", "train min", "guidance w", "training templates: mean (min-max)", "held-out template",
                  "empty caption: largest class share"], rows, ["---"] + ["---:"] * 5)
