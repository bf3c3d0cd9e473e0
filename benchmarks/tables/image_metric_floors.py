"""The image scores' floors and matched-Gaussian baselines (``benchmarks.image_metric_floors``)."""

from __future__ import annotations

from benchmarks.tables.format import table


def render(files: dict[str, dict]) -> str:
    """The image scores' yardsticks per data set and sample count: training images (the floor) and the matched
    Gaussian against the test split."""
    rows = []
    for name, res in files["image_metric_floors"]["results"].items():
        for n, by_row in res["rows"].items():
            for row, r in by_row.items():
                acc = f"{r['label_accuracy']:.3f}" if "label_accuracy" in r else "-"
                rows.append([f"{name} (`{res['extractor']}`, {res['n_reference']} test images)", n,
                             row.replace("_", " "), f"{r['fd']:.2f}", f"{r['kd']:.3g} ± {r['kd_stderr']:.1g}",
                             f"{r['precision']:.3f}", f"{r['recall']:.3f}", f"{r['confidence']:.3f}", acc,
                             f"{sum(r['seconds'].values()):.1f}"])
    return table(["data (extractor, reference)", "n", "row", "FD", "KD ± se", "precision", "recall",
                  "confidence", "label acc.", "seconds"], rows, ["---", "---:", "---"] + ["---:"] * 7)
