"""Autoencoders of 4 / 8 / 16 latent channels on Fashion-MNIST (``benchmarks.latent_channels``)."""

from __future__ import annotations

import math

from benchmarks.tables.format import table


def render(files: dict[str, dict]) -> str:
    """One row per latent width: PSNR, SSIM and rFD of the test reconstructions, with the floor and the budget."""
    rows = []
    for c, r in files["latent_channels"]["rows"].items():
        secs = r.get("train_seconds")
        rows.append([c, "x".join(map(str, r["latent_shape"])), f"{r['parameters']:,}", str(r["steps"]),
                     f"{r['psnr']:.2f}", f"{r['ssim']:.3f}", f"{r['rfd']:.2f}", f"{r['floor_fd']:.2f}",
                     "-" if secs is None or not math.isfinite(secs) else f"{secs / 60:.1f}"])
    return table(["latent channels", "latent", "parameters", "steps (batch 64)", "PSNR (dB)", "SSIM",
                  "rFD (recon. vs test)", "floor FD (train vs test)", "train min"], rows,
                 ["---:", "---", "---:", "---:", "---:", "---:", "---:", "---:", "---:"])
