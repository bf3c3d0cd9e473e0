"""``flowforge`` command line: thin argument parsing over the library functions."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ..errors import UserError


def _train(args: argparse.Namespace) -> None:
    from ..config import load_config
    from ..train import train

    config = load_config(args.config, args.overrides)
    result = train(config, resume=args.resume)
    print(f"trained {result.step} steps in {result.seconds:.1f} s -> {result.run_dir}")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # Under torchrun, leave without interpreter shutdown. DDP keeps gloo's process group, and its worker
        # threads, alive past destroy_process_group (torch 2.13); a worker still freeing a collective's
        # Python-owned tensors when shutdown starts aborts the process ("terminate called without an active
        # exception"). train() ends with a barrier that makes this rare (1 in 70 runs measured, from 1 in 5);
        # skipping shutdown makes it impossible. Everything is written and closed by now.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def _sample(args: argparse.Namespace) -> None:
    import numpy as np
    import torch

    from ..data import load_dataset
    from ..runs import load_run, sample_options
    from ..train.pictures import write_samples_picture

    run = load_run(args.run_dir)
    out = Path(args.out)
    if out.suffix not in (".npy", ".png"):
        raise UserError(f"--out {out}: unsupported extension {out.suffix!r}; use .npy (array) or .png (picture)")
    if args.guidance is not None and run.config.model.num_classes is None:
        raise UserError(f"--guidance {args.guidance}: {args.run_dir} is not class-conditional (model.num_classes is "
                        "unset); guidance needs a model trained with model.num_classes and label_dropout > 0")
    options = sample_options(run.config, args.n, torch.Generator().manual_seed(args.seed), sampler=args.sampler,
                             steps=args.steps, grid=args.grid, guidance=args.guidance, progress=sys.stderr.isatty())
    samples = run.model.sample(args.n, **options)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".npy":
        np.save(out, samples.cpu().numpy())
    else:
        write_samples_picture(samples, load_dataset(run.config.data), out, title=f"{run.config.run.name}")
    print(f"wrote {args.n} samples to {out}")


def _eval(args: argparse.Namespace) -> None:
    from ..evaluation import evaluate

    record = evaluate(args.run_dir, n_samples=args.n, sampler=args.sampler, steps=args.steps,
                      n_likelihood=args.n_likelihood, progress=sys.stderr.isatty())
    how = record["sampler"] + (f", {record['steps']} steps" if record["steps"] else "")
    print(f"{how}, {record['n_reference']} samples vs "
          f"{record['n_reference']} held-out points, mean ± std over {record['repeats']} reference draw(s)")
    print(f"{'':18s} {'energy distance':>20s} {'sliced W2':>18s} {'exact W2':>18s}")
    for key in ("model", "noise_floor", "matched_gaussian"):
        m, sd = record[key], record[key + "_std"]
        print(f"{key:18s} {m['energy_distance']:11.5f} ± {sd['energy_distance']:.5f} "
              f"{m['sliced_w2']:9.4f} ± {sd['sliced_w2']:.4f} {m['w2']:9.4f} ± {sd['w2']:.4f}")
    if "likelihood" in record:
        lk = record["likelihood"]
        print(f"held-out NLL {lk['nll']:.3f} ± {lk['nll_stderr']:.3f} nats per example "
              f"(log-likelihood {lk['log_likelihood']:.2f}), {lk['bits_per_dim']:.4f} bits/dim on {lk['n']} examples")
    print(f"stored in {Path(args.run_dir) / 'eval.json'}")


def _inpaint(args: argparse.Namespace) -> None:
    from ..inpainting import inpaint_run

    options = {k: v for k, v in (("steps", args.steps), ("lr", args.lr), ("sampler", args.sampler),
                                 ("resample", args.resample)) if v is not None}
    path = inpaint_run(args.run_dir, args.mask, n=args.n, out=args.out, seed=args.seed, **options)
    print(f"wrote {path}: rows of (original, masked, filled)")


def _info(args: argparse.Namespace) -> None:
    from ..runs import load_run
    from ..train.checkpoint import checkpoint_dirs
    from ..train.logging import read_metrics

    run = load_run(args.run_dir)
    cfg = run.config
    n_params = sum(p.numel() for p in run.model.parameters())
    print(f"run        {run.dir}")
    print(f"data       {cfg.data.name}, example shape {tuple(run.data['shape'])}")
    print(f"model      {cfg.model.kind} ({cfg.model.path} path), {cfg.model.net.name} "
          f"{cfg.model.net.depth}x{cfg.model.net.width}, {n_params:,} parameters")
    print(f"trained    step {run.step} of {cfg.train.steps}")
    print(f"checkpoints {', '.join(p.name for p in checkpoint_dirs(run.dir))}")
    train_rows = [r for r in read_metrics(run.dir) if r.get("kind", "train") == "train"]
    if train_rows:
        print(f"last loss  {train_rows[-1]['loss']:.5f} at step {train_rows[-1]['step']}")
    ev = run.dir / "eval.json"
    if ev.is_file():
        print("eval       " + json.dumps(json.loads(ev.read_text())["model"]))


def build_parser() -> argparse.ArgumentParser:
    from ..solvers import SOLVERS

    parser = argparse.ArgumentParser(prog="flowforge", description="Flow-based generative models: train, sample, evaluate.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a model from a YAML config",
                       description="Train a model. Overrides are dotted key=value pairs, e.g. train.steps=3000.")
    p.add_argument("config", help="YAML preset, e.g. configs/rf-checkerboard.yaml")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. train.steps=3000 model.net.width=256")
    p.add_argument("--resume", action="store_true", help="continue from the run's newest checkpoint")
    p.set_defaults(fn=_train)

    p = sub.add_parser("sample", help="draw samples from a trained run")
    p.add_argument("run_dir")
    p.add_argument("--n", type=int, default=1000, help="number of samples (default 1000)")
    p.add_argument("--out", required=True, help="output file: .npy (array) or .png (picture)")
    p.add_argument("--steps", type=int, help="sampler steps (default: the run's sample.steps)")
    p.add_argument("--sampler", choices=sorted(SOLVERS), help="sampler (default: the run's sample.sampler)")
    p.add_argument("--grid", choices=["uniform", "karras", "shifted"], help="time grid (default: the run's)")
    p.add_argument("--guidance", type=float, help="classifier-free guidance weight (class-conditional models)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(fn=_sample)

    p = sub.add_parser("eval", help="score samples against held-out data, the noise floor and a Gaussian baseline")
    p.add_argument("run_dir")
    p.add_argument("--n", type=int, help="number of samples (default: the run's eval.n_samples)")
    p.add_argument("--steps", type=int, help="sampler steps (default: the run's sample.steps)")
    p.add_argument("--sampler", choices=sorted(SOLVERS))
    p.add_argument("--n-likelihood", type=int, dest="n_likelihood",
                   help="held-out examples scored by the likelihood, the first N (default: eval.n_likelihood; 0 = all)")
    p.set_defaults(fn=_eval)

    p = sub.add_parser("inpaint", help="fill masked parts of held-out images; writes (original, masked, filled)")
    p.add_argument("run_dir")
    p.add_argument("--mask", required=True, help="what is missing: left, right, top, bottom, center or random:P")
    p.add_argument("--n", type=int, default=8, help="number of images (default 8)")
    p.add_argument("--out", required=True, help="output picture (.png)")
    p.add_argument("--steps", type=int, help="optimisation / sampling steps of the model's inpainting")
    p.add_argument("--lr", type=float, help="step size of gradient-based inpainting (normalizing flows)")
    p.add_argument("--sampler", choices=sorted(SOLVERS), help="sampler (continuous models; default: sample.sampler)")
    p.add_argument("--resample", type=int, help="RePaint resampling per step (continuous models; default 1)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(fn=_inpaint)

    p = sub.add_parser("info", help="what a run holds: config, progress, checkpoints, metrics")
    p.add_argument("run_dir")
    p.set_defaults(fn=_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for name, least in (("n", 2 if args.command == "eval" else 1), ("steps", 1)):
        value = getattr(args, name, None)
        if value is not None and value < least:
            print(f"flowforge {args.command}: error: --{name} must be >= {least}, got {value}", file=sys.stderr)
            return 2
    try:
        args.fn(args)
    except UserError as err:
        print(f"flowforge {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; the newest complete checkpoint is kept (continue with --resume)", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
