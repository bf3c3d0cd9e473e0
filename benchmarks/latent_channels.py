"""SD3's latent-width claim at this machine's scale: KL autoencoders with 4, 8 and 16 latent channels on
Fashion-MNIST, the same architecture and budget otherwise, scored on the test split.

Each autoencoder is ``configs/ae-fashion.yaml`` with ``model.autoencoder.latent_channels`` changed and the same
``train.steps``; each is scored on the first ``--n`` test images by

- PSNR (dB) and SSIM (Wang et al., 2004: 11 x 11 Gaussian window, sigma 1.5) of the reconstructions (posterior
  mean, decoded) in [0, 1] pixels;
- rFD: the Fréchet distance, in the pinned Fashion-MNIST CNN's features, of the reconstructions of the test images
  against the test images themselves (the protocol of SD's rFID), beside the floor of real training images.

Then the generation half of the claim (``--flows``): the same latent DiT (``configs/dit-fashion-latent.yaml``, as
``benchmarks.latent_vs_pixel`` trains it on the 4-channel latents: DiT-tiny, patch 1, 49 tokens, ``--flow-steps``
steps of batch 64) on each autoencoder's latents, scored by the FD and label accuracy of ``--flow-n`` decoded
samples (dpm++2m 20 steps, guidance 2, labels cycling through the classes) in the pinned Fashion-MNIST CNN against
the test set, beside the FD of as many reconstructions of training images (the reconstruction floor at the same
n). The 4-channel flow is ``benchmarks.latent_vs_pixel``'s ``dit-latent`` run when it is there. Commands (10-13 min
of training per autoencoder at 300 steps, about 5 per flow, one thread of a loaded 2-core machine):

    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python -m benchmarks.latent_channels --steps 300
    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python -m benchmarks.latent_channels --steps 300 --flows --flow-n 300

Results: benchmarks/results/latent_channels.json; the table of docs/latent-flows.md is rendered from it
(``python -m benchmarks.render_tables --print latent_channels``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from flowforge.config import DataConfig, load_config
from flowforge.data import load_dataset
from flowforge.data.latents import load_autoencoder, to_ae_range
from flowforge.metrics import load_extractor, reference_features, score_images
from flowforge.metrics.reconstruction import psnr, ssim
from flowforge.runs import latest_checkpoint
from flowforge.train import train

from benchmarks.harness import command_line, read_results, training_seconds, write_results
from benchmarks.tables import latent_channels as table

CHANNELS = (4, 8, 16)
PRESET = "configs/ae-fashion.yaml"


def train_autoencoder(channels: int, steps: int, root: Path) -> tuple[Path, float]:
    run_dir = root / f"ae-{channels}"
    if latest_checkpoint(run_dir) is not None:
        return run_dir, float("nan")  # trained by an earlier call
    config = load_config(PRESET, [f"run.dir={run_dir}", f"run.name=ae-{channels}",
                                  f"model.autoencoder.latent_channels={channels}", f"train.steps={steps}",
                                  f"train.ckpt_every={steps}", "train.sample_every=0", "train.log_every=50",
                                  "train.tensorboard=false", f"train.warmup_steps={min(100, steps // 10)}"])
    t = time.perf_counter()
    train(config, progress=False)
    return run_dir, time.perf_counter() - t


@torch.no_grad()
def score(run_dir: Path, n: int, seed: int) -> dict:
    data = load_dataset(DataConfig(name="fashion-mnist"))
    ae = load_autoencoder(str(run_dir)).eval()
    x = data.test[:n]
    recon = torch.cat([ae.decode(ae.encode(to_ae_range(b, data.value_range))[0]) for b in x.split(500)])
    lo, hi = data.value_range
    x01, r01 = (x - lo) / (hi - lo), ((recon + 1) / 2).clamp(0, 1)
    extractor = load_extractor("fashion-mnist")
    reference = reference_features(x, dataset="fashion-mnist", split=f"test[:{n}]", extractor=extractor,
                                   value_range=data.value_range, cache=False)
    rfd = score_images(r01 * (hi - lo) + lo, reference, extractor=extractor, value_range=data.value_range,
                       seed=seed)
    pick = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(seed))[:n]
    floor = score_images(data.train[pick], reference, extractor=extractor, value_range=data.value_range, seed=seed)
    return {"psnr": float(psnr(r01, x01).mean()), "ssim": float(ssim(r01, x01).mean()), "rfd": rfd["fd"],
            "floor_fd": floor["fd"], "n": n, "parameters": sum(p.numel() for p in ae.parameters()),
            "latent_shape": list(ae.latent_shape(tuple(data.shape)))}


@torch.no_grad()
def flow_score(run_dir: Path, n: int, seed: int) -> dict:
    """FD and label accuracy of ``n`` decoded samples of a latent flow run, and its reconstruction floor at ``n``."""
    from flowforge.runs import load_run

    run = load_run(run_dir)
    run.model.eval()
    data = load_dataset(DataConfig(name="fashion-mnist", image_range="symmetric"))
    extractor = load_extractor("fashion-mnist")
    reference = reference_features(data.test, dataset="fashion-mnist", split="test", extractor=extractor,
                                   value_range=data.value_range)
    options = run.sample_options(n, torch.Generator().manual_seed(seed))
    t = time.perf_counter()
    samples = torch.cat([run.model.sample(len(lab), **{**options, "labels": lab})
                         for lab in options["labels"].split(100)])  # (n, 1, 28, 28) decoded
    seconds = time.perf_counter() - t
    model = score_images(samples.clamp(-1, 1), reference, extractor=extractor, value_range=data.value_range,
                         labels=options["labels"], seed=seed)
    pick = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(seed))[:n]
    recon = run.model.reconstruct(data.train[pick]).clamp(-1, 1)
    floor = score_images(recon, reference, extractor=extractor, value_range=data.value_range, seed=seed)
    return {"fd": model["fd"], "label_accuracy": model["label_accuracy"], "reconstruction_fd": floor["fd"],
            "sample_seconds": seconds, "n": n, "step": run.step,
            "flow_parameters": sum(p.numel() for p in run.model.flow.parameters())}


def flows(root: Path, steps: int, n: int, seed: int) -> dict:
    """The same latent DiT on each width's latents (trained here unless a run is there), scored."""
    from benchmarks.latent_vs_pixel import train_dit

    rows = {}
    for c in CHANNELS:
        name = "dit-latent" if c == 4 else f"dit-latent-{c}"  # 4: benchmarks.latent_vs_pixel's run
        run_dir, _ = train_dit(name, [f"data.latent={root / f'ae-{c}'}", "model.net.patch=1"], steps, n, root)
        rows[str(c)] = {**flow_score(run_dir, n, seed), "train_seconds": training_seconds(run_dir),
                        "flow_steps": steps}
        print(c, rows[str(c)], flush=True)
    return rows


@torch.no_grad()
def figure(run_dirs: list[Path], out: Path, n: int = 8) -> Path:
    """Rows: ``n`` test images, then their reconstructions by the autoencoder of each of ``run_dirs``."""
    from flowforge.viz import image_grid

    data = load_dataset(DataConfig(name="fashion-mnist"))
    x = data.test[:n]
    rows = [data.to_pixels(x)]
    for run_dir in run_dirs:
        ae = load_autoencoder(str(run_dir)).eval()
        rows.append(((ae.decode(ae.encode(to_ae_range(x, data.value_range))[0]) + 1) / 2).clamp(0, 1))
    return image_grid(torch.cat(rows), out, nrow=n, scale=3)


def autoencoder_parser(description: str, steps: int, figure: str) -> argparse.ArgumentParser:
    """The options of a benchmark that trains autoencoders and scores them: ``--steps`` (default ``steps``), ``--n``,
    ``--root``, ``--seed``, and ``--figure`` (only the picture of reconstructions: test images, then ``figure``)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--steps", type=int, default=steps, help="training steps of each autoencoder (batch 64)")
    p.add_argument("--n", type=int, default=2000, help="test images scored")
    p.add_argument("--root", default="runs/bench-latent", help="where the runs are written")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--figure", help=f"only write the picture of reconstructions (test images, then {figure}) of the "
                                    "trained runs to this PNG")
    return p


def main(argv: list[str] | None = None) -> None:
    p = autoencoder_parser(__doc__.splitlines()[0], 300, "4 / 8 / 16 channels")
    p.add_argument("--flows", action="store_true", help="only the latent DiT on each autoencoder: FD of samples "
                                                        "(kept in the results file beside the autoencoders' rows)")
    p.add_argument("--flow-steps", type=int, default=300, help="training steps of each latent DiT (batch 64)")
    p.add_argument("--flow-n", type=int, default=300, help="decoded samples scored per latent DiT")
    args = p.parse_args(argv)
    if args.figure:
        print(f"wrote {figure([Path(args.root) / f'ae-{c}' for c in CHANNELS], Path(args.figure))}")
        return
    if args.flows:
        record = read_results("latent_channels")
        # the autoencoders' rows keep the machine and date they were measured on; the head is the flows'
        kept = record.get("autoencoders_record") or {k: record[k] for k in ("date", "command", "machine",
                                                                            "flowforge_source")}
        record["flows"] = flows(Path(args.root), args.flow_steps, args.flow_n, args.seed)
        path = write_results("latent_channels", {"preset": record["preset"], "rows": record["rows"],
                                                 "autoencoders_record": kept, "flows": record["flows"]})
        print(table.render_flows({"latent_channels": record}))
        print(f"wrote {path}")
        return
    rows = {}
    for c in CHANNELS:
        run_dir, seconds = train_autoencoder(c, args.steps, Path(args.root))
        rows[str(c)] = scored(run_dir, args, train_seconds=seconds)
    write_rows("latent_channels", rows, table.render, argv)


def scored(run_dir: Path, args: argparse.Namespace, **extra) -> dict:
    """:func:`score` of the autoencoder of ``run_dir`` on ``args.n`` test images, with the steps it trained (its
    config's: a run trained by an earlier call may differ from ``--steps``) and ``extra``."""
    config = load_config(run_dir / "config.yaml")
    ae = config.model.autoencoder
    row = {**score(run_dir, args.n, args.seed), "steps": config.train.steps,
           "disc_start": ae.disc_start if ae.disc_weight > 0 else None, **extra}
    print(run_dir.name, {k: row[k] for k in ("psnr", "ssim", "rfd", "train_seconds")}, flush=True)
    return row


def write_rows(name: str, rows: dict[str, dict], render, argv: list[str] | None) -> None:
    """Write the autoencoders' ``rows`` to ``benchmarks/results/<name>.json`` and print their table."""
    record = {"command": command_line(argv), "preset": PRESET, "rows": rows}
    path = write_results(name, record)
    print(render({name: record}))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
