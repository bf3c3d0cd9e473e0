"""The same DiT in latent and in pixel space on Fashion-MNIST (``benchmarks.latent_vs_pixel``)."""

from __future__ import annotations

from benchmarks.tables.format import table


def render(files: dict[str, dict]) -> str:
    """One row per space: tokens, steps, training minutes, FD and label accuracy, and the floors."""
    rows = []
    for space, r in files["latent_vs_pixel"]["rows"].items():
        secs = r.get("train_seconds")
        acc = r.get("label_accuracy")
        recon = r.get("reconstruction_fd")
        rows.append([space, str(r["tokens"]), f"{r['parameters']:,}", str(r["steps"]),
                     "-" if secs is None else f"{secs / 60:.1f}", f"{r['fd']:.1f}",
                     "-" if acc is None else f"{acc:.3f}", "-" if recon is None else f"{recon:.1f}",
                     f"{r['floor_fd']:.1f}", str(r["n"])])
    return table(["space", "tokens", "parameters", "steps (batch 64)", "train min", "FD", "label acc.",
                  "reconstruction floor FD", "noise floor FD", "n"], rows, ["---"] + ["---:"] * 9)


def render_time(files: dict[str, dict]) -> str:
    """One row per equal-time run: its share of the minutes, measured step time, the budget it gave, the
    training's own minutes, FD and label accuracy, and the floors."""
    rows = []
    for name, r in files["latent_vs_pixel_time"]["rows"].items():
        acc, recon = r.get("label_accuracy"), r.get("reconstruction_fd")
        rows.append([name, str(r["tokens"]), f"{r['step_seconds']:.3f}", str(r["steps"]),
                     f"{r['train_seconds'] / 60:.1f}", f"{r['fd']:.1f}", "-" if acc is None else f"{acc:.3f}",
                     "-" if recon is None else f"{recon:.1f}", f"{r['floor_fd']:.1f}", str(r["n"])])
    return table(["run", "tokens", "s / step (timed)", "steps (batch 64)", "train min", "FD", "label acc.",
                  "reconstruction floor FD", "noise floor FD", "n"], rows, ["---"] + ["---:"] * 9)
