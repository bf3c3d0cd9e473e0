"""Classifier-free guidance on MNIST (``benchmarks.guidance``)."""

from __future__ import annotations

from benchmarks.tables.format import table


def render(files: dict[str, dict]) -> str:
    """Classifier-free guidance on MNIST: one row per guidance weight, then the training images' floor; the lowest
    feature FD bold."""
    record = files["guidance_mnist"]
    rows, fds = [], []
    for r in record["rows"]:
        w = r["weight"]
        label = ("unconditional (no label)" if w == 0 else "1 (conditional)" if w == 1
                 else f"{w:g} (the preset's)" if w == record.get("run_sample_guidance") else f"{w:g}")
        acc = "-" if r["accuracy"] is None else f"{r['accuracy']:.3f}"
        rows.append([label, acc, f"{r['confidence']:.3f}", f"{r['frechet_distance']:.1f}", f"{r['precision']:.3f}",
                     f"{r['recall']:.3f}", f"{r['class_spread']:.3f}"])
        fds.append(r["frechet_distance"])
    best = min(range(len(fds)), key=fds.__getitem__)
    rows[best][3] = f"**{rows[best][3]}**"
    f = record["floor"]
    n = f["n_samples"]
    rows.append([f"floor: {n} training images", f"{f['label_accuracy']:.3f}", f"{f['confidence']:.3f}",
                 f"{f['fd']:.1f}", f"{f['precision']:.3f}", f"{f['recall']:.3f}",
                 f"{max(f['class_histogram']) / n:.3f}"])
    return table(["guidance w", "label accuracy", "classifier confidence", "FD", "precision", "recall",
                  "largest class share"], rows, ["---:"] * 7)
