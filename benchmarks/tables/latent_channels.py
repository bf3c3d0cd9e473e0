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


def render_flows(files: dict[str, dict]) -> str:
    """One row per latent width: the same latent DiT's FD and label accuracy of samples, beside the autoencoder's
    reconstruction FD at the same n and its PSNR."""
    record = files["latent_channels"]
    rows = []
    for c, r in record["flows"].items():
        ae = record["rows"][c]
        secs = r.get("train_seconds")
        rows.append([c, f"{r['flow_parameters']:,}", str(r["flow_steps"]), f"{ae['psnr']:.2f}",
                     f"{r['reconstruction_fd']:.1f}", f"{r['fd']:.1f}", f"{r['label_accuracy']:.3f}",
                     f"{r['fd'] / r['reconstruction_fd']:.2f}", str(r["n"]),
                     "-" if secs is None or not math.isfinite(secs) else f"{secs / 60:.1f}"])
    return table(["latent channels", "flow parameters", "flow steps (batch 64)", "autoencoder PSNR (dB)",
                  "reconstruction FD", "sample FD", "label acc.", "sample FD / reconstruction FD", "n",
                  "flow train min"], rows, ["---:"] * 10)


def render_discriminator(files: dict[str, dict]) -> str:
    """One row per autoencoder, without and with LDM's patch discriminator: the same scores as the widths'."""
    rows = []
    for name, r in files["ae_discriminator"]["rows"].items():
        rows.append([f"on (from step {r['disc_start']})" if r["disc_start"] is not None else "off",
                     str(r["steps"]), f"{r['psnr']:.2f}", f"{r['ssim']:.3f}", f"{r['rfd']:.2f}",
                     f"{r['floor_fd']:.2f}", f"{r['train_seconds'] / 60:.1f}"])
    return table(["patch discriminator", "steps (batch 64)", "PSNR (dB)", "SSIM", "rFD (recon. vs test)",
                  "floor FD (train vs test)", "train min"], rows, ["---"] + ["---:"] * 6)
