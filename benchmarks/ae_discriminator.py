"""LDM's patch discriminator on the Fashion-MNIST autoencoder: the same autoencoder trained with and without it.

``configs/ae-fashion.yaml`` (4 latent channels, downsampling 4) twice for ``--steps`` steps of batch 64: once as
the preset is (L1 + 0.1 x the perceptual term in the pinned Fashion-MNIST CNN + KL 1e-6, no discriminator), once
with the PatchGAN switched on halfway (``model.autoencoder.disc_weight=0.5``, ``disc_start`` = half the steps:
hinge loss, LDM's adaptive weight on the decoder's last layer). Each is scored on the first ``--n`` test images as
``benchmarks.latent_channels`` scores the latent widths: PSNR and SSIM of the reconstructions in [0, 1] pixels
and rFD, the Fréchet distance of the reconstructions against the test images in the pinned CNN's features (SD's
rFID protocol), beside the floor of as many real training images. LDM adds the discriminator for sharper
reconstructions at a small cost in PSNR; this measures whether it does so at this scale.

    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python -m benchmarks.ae_discriminator --steps 1500
    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.ae_discriminator --figure benchmarks/results/ae-discriminator.png

Results: benchmarks/results/ae_discriminator.json (``python -m benchmarks.render_tables --print ae_discriminator``).
"""

from __future__ import annotations

from pathlib import Path

from flowforge.config import load_config
from flowforge.runs import latest_checkpoint
from flowforge.train import train

from benchmarks.harness import training_seconds
from benchmarks.latent_channels import PRESET, autoencoder_parser, figure, scored, write_rows
from benchmarks.tables import latent_channels as table


def arms(steps: int) -> dict[str, list[str]]:
    """The two autoencoders: run name -> overrides of :data:`PRESET`."""
    return {"ae-4-nodisc": [], "ae-4-disc": ["model.autoencoder.disc_weight=0.5",
                                             f"model.autoencoder.disc_start={steps // 2}"]}


def train_arm(name: str, overrides: list[str], steps: int, root: Path) -> Path:
    """Train one arm into ``root / name`` unless a checkpoint is there."""
    run_dir = root / name
    if latest_checkpoint(run_dir) is None:
        train(load_config(PRESET, [*overrides, f"run.dir={run_dir}", f"run.name={name}", f"train.steps={steps}",
                                   "train.sample_every=0", "train.tensorboard=false"]), progress=False)
    return run_dir


def main(argv: list[str] | None = None) -> None:
    args = autoencoder_parser(__doc__.splitlines()[0], 1500, "without and with the discriminator").parse_args(argv)
    root, names = Path(args.root), arms(args.steps)
    if args.figure:
        print(f"wrote {figure([root / name for name in names], Path(args.figure))}")
        return
    rows = {}
    for name, overrides in names.items():
        run_dir = train_arm(name, overrides, args.steps, root)
        rows[name] = scored(run_dir, args, train_seconds=training_seconds(run_dir), discriminator=bool(overrides))
    write_rows("ae_discriminator", rows, table.render_discriminator, argv)


if __name__ == "__main__":
    main()
