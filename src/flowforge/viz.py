"""Pictures: 2-D scatter + density next to the data, image grids, training curves (matplotlib / Pillow)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_points(samples: Tensor, data: Tensor, path: Path, title: str = "", scatter_max: int = 2000,
                bins: int = 80) -> Path:
    """Scatter (of at most ``scatter_max`` points) and 2-D histogram (of all points) of model samples
    beside the data, first two coordinates."""
    plt = _plt()
    s = samples.reshape(samples.shape[0], -1)[:, :2].detach().cpu().float().numpy()
    d = data.reshape(data.shape[0], -1)[:, :2].detach().cpu().float().numpy()
    lo = np.percentile(d, 0.5, axis=0)
    hi = np.percentile(d, 99.5, axis=0)
    pad = 0.1 * (hi - lo)
    box = [[lo[0] - pad[0], hi[0] + pad[0]], [lo[1] - pad[1], hi[1] + pad[1]]]
    fig, axes = plt.subplots(2, 2, figsize=(8, 8))
    for col, (pts, name) in enumerate([(d, "data"), (s, "samples")]):
        shown = pts[:scatter_max]
        axes[0, col].scatter(shown[:, 0], shown[:, 1], s=1, alpha=0.4, color="C0" if col == 0 else "C1")
        axes[0, col].set(xlim=box[0], ylim=box[1], title=f"{name} ({len(shown)} points)")
        axes[1, col].hist2d(pts[:, 0], pts[:, 1], bins=bins, range=box, cmap="viridis")
        axes[1, col].set(title=f"{name} density ({len(pts)} points)")
        for ax in axes[:, col]:
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def image_grid(pixels: Tensor, path: Path, nrow: int | None = None, scale: int = 1) -> Path:
    """Save images ``pixels`` (n, C, H, W) with values in [0, 1] as one PNG grid."""
    from PIL import Image

    x = pixels.detach().cpu().float().clamp(0, 1)
    n, c, h, w = x.shape
    nrow = nrow or math.ceil(math.sqrt(n))
    ncol = math.ceil(n / nrow)
    grid = torch.ones(c, ncol * (h + 2) + 2, nrow * (w + 2) + 2)
    for i in range(n):
        r, q = divmod(i, nrow)
        grid[:, 2 + r * (h + 2):2 + r * (h + 2) + h, 2 + q * (w + 2):2 + q * (w + 2) + w] = x[i]
    arr = (grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    img = Image.fromarray(arr[..., 0] if c == 1 else arr, mode="L" if c == 1 else "RGB")
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


def plot_curves(records: list[dict[str, Any]], path: Path, keys: tuple[str, ...] = ("loss", "lr")) -> Path:
    """Training curves of ``keys`` against step from metrics records."""
    plt = _plt()
    rows = [r for r in records if r.get("kind", "train") == "train"]
    val = [r for r in records if r.get("kind") == "val"]
    keys = tuple(k for k in keys if any(k in r for r in rows))
    panels = [(key, [(r["step"], r[key]) for r in rows if key in r]) for key in keys]
    if val:
        panels.append(("held-out NLL (nats)", [(r["step"], r["nll"]) for r in val]))
    val_loss = [r for r in records if r.get("kind") == "val_loss"]
    if val_loss:  # SD3's validation loss (flowforge.train.validation)
        panels.append(("validation loss (fixed t)", [(r["step"], r["loss"]) for r in val_loss]))
    fig, axes = plt.subplots(1, max(len(panels), 1), figsize=(4.5 * max(len(panels), 1), 3.2), squeeze=False)
    for ax, (key, pts) in zip(axes[0], panels):
        ax.plot(*zip(*pts))
        ax.set(xlabel="step", title=key)
        if key == "loss" and min(v for _, v in pts) > 0:  # NLL losses can be negative
            ax.set_yscale("log")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_comparison(rows: list[dict[str, Any]], path: Path) -> Path:
    """Runs side by side (``flowforge compare``): each score as a ratio to its noise floor against training
    seconds (FD for images where scored, energy distance otherwise), and bits/dim where the runs have it."""
    plt = _plt()
    use_fd = all(r.get("fd") is not None for r in rows)
    key, floor, name = ("fd", "fd_floor", "FD") if use_fd else ("energy_distance", "energy_floor", "energy distance")
    panels = [name]
    if any(r.get("bits_per_dim") is not None for r in rows):
        panels.append("bits/dim")
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    ax = axes[0][0]
    for r in rows:
        x = r.get("train_seconds") or 0.0
        ratio = r[key] / r[floor] if r.get(floor) else float("nan")
        ax.scatter([x], [ratio])
        ax.annotate(r["run"], (x, ratio), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax.set(xlabel="training seconds", ylabel=f"{name} / noise floor", title=f"{name} (1 = the floor)")
    ax.set_yscale("log")
    if len(panels) > 1:
        ax = axes[0][1]
        scored = [r for r in rows if r.get("bits_per_dim") is not None]
        ax.barh([r["run"] for r in scored], [r["bits_per_dim"] for r in scored])
        ax.set(xlabel="bits/dim (lower is better)", title="held-out likelihood")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_scores(reference: np.ndarray, marks: np.ndarray, path: Path, xlabel: str, title: str = "",
                bins: int = 40) -> Path:
    """Histogram of a score over held-out examples (``reference``), with the scores of the examples in
    question (``marks``) as vertical lines, so an outlier stands apart from the bulk."""
    plt = _plt()
    reference, marks = np.asarray(reference, dtype=float), np.asarray(marks, dtype=float)
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    ax.hist(reference, bins=bins, color="C0", alpha=0.7, label=f"held-out ({len(reference)})")
    for i, m in enumerate(marks):
        ax.axvline(m, color="C3", lw=1.5, label="input" if i == 0 else None)
    ax.set(xlabel=xlabel, ylabel="examples", title=title)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
