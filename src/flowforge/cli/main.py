"""``flowforge`` command line: thin argument parsing over the library functions."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

from ..errors import UserError

SAMPLE_CHUNK = 10_000  # `flowforge sample` draws this many examples per model call


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


def _reflow(args: argparse.Namespace) -> None:
    from ..runs.pairs import reflow_config
    from ..train import train

    config = reflow_config(args.parent, pairs=args.pairs, name=args.name, distill=args.distill, loss=args.loss,
                           overrides=args.overrides)
    result = train(config, resume=args.resume)
    print(f"trained {result.step} steps on {args.pairs} pairs of {args.parent} in {result.seconds:.1f} s "
          f"-> {result.run_dir}")


def _size(text: str, data_shape: tuple[int, ...]) -> tuple[int, int, int]:
    """``HxW`` as an image shape with the data's channels."""
    parts = text.lower().split("x")
    if len(data_shape) != 3 or len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise UserError(f"--size {text}: expected HEIGHTxWIDTH such as 16x16, for a model of images "
                        f"(this run's data has shape {data_shape})")
    return (data_shape[0], int(parts[0]), int(parts[1]))


def _sample(args: argparse.Namespace) -> None:
    import numpy as np
    import torch

    from ..data import load_dataset
    from ..runs import check_finite_samples, check_sample_memory, draw_samples, load_run, write_samples_picture

    out = Path(args.out)
    if out.suffix not in (".npy", ".png"):
        raise UserError(f"--out {out}: unsupported extension {out.suffix!r}; use .npy (array) or .png (picture)")
    out.parent.mkdir(parents=True, exist_ok=True)  # a bad path fails now, not after sampling
    run = load_run(args.run_dir)
    if args.compile:
        if run.config.model.kind != "continuous":
            raise UserError(f"--compile: {args.run_dir} is a {run.config.model.kind} flow, sampled by its exact "
                            f"inverse in one pass; --compile applies to continuous models, drop it")
        run.model.net.compile()
    shape = _size(args.size, tuple(run.data["shape"])) if args.size else None
    check_sample_memory(args.n, shape or tuple(run.data["shape"]))
    if args.prompt is not None and run.config.model.text.captions == "none":
        raise UserError(f"--prompt {args.prompt!r}: {args.run_dir} has no text input (model.text.captions is unset); "
                        f"sample it without --prompt, or train a text model such as configs/mmdit-fashion-text.yaml")
    if args.guidance is not None and run.config.model.num_classes is None:
        raise UserError(f"--guidance {args.guidance}: {args.run_dir} is not class-conditional (model.num_classes is "
                        "unset); guidance needs a model trained with model.num_classes and label_dropout > 0")
    options = run.sample_options(args.n, torch.Generator().manual_seed(args.seed), sampler=args.sampler,
                                 steps=args.steps, grid=args.grid, guidance=args.guidance, shape=shape,
                                 progress=sys.stderr.isatty())
    if args.prompt is not None:  # the prompt replaces the labels' captions
        options.pop("labels", None)
        options["prompts"] = args.prompt
    samples = draw_samples(run.model, args.n, options, SAMPLE_CHUNK)
    check_finite_samples(samples)
    if out.suffix == ".npy":
        np.save(out, samples.cpu().numpy())
    else:
        title = run.config.run.name + (f": {args.prompt!r}" if args.prompt is not None else "")
        write_samples_picture(samples, load_dataset(run.config.data), out, title=title)
    print(f"wrote {args.n} samples to {out}")


def _eval(args: argparse.Namespace) -> None:
    from ..runs import evaluate
    from ..runs.report import eval_tables

    record = evaluate(args.run_dir, n_samples=args.n, sampler=args.sampler, steps=args.steps, grid=args.grid,
                      n_likelihood=args.n_likelihood, progress=sys.stderr.isatty())
    print("\n".join(eval_tables(record)))
    print(f"stored in {Path(args.run_dir) / 'eval.json'}")


def _inpaint(args: argparse.Namespace) -> None:
    from ..runs import inpaint_run

    if Path(args.out).suffix != ".png":
        raise UserError(f"--out {args.out}: inpainting writes a picture; give a .png path")
    if args.lr is not None and not (math.isfinite(args.lr) and args.lr > 0):
        raise UserError(f"--lr {args.lr}: expected a positive finite step size, e.g. --lr 0.05")
    options = {k: v for k, v in (("steps", args.steps), ("lr", args.lr), ("sampler", args.sampler),
                                 ("resample", args.resample)) if v is not None}
    path = inpaint_run(args.run_dir, args.mask, n=args.n, out=args.out, seed=args.seed, **options)
    print(f"wrote {path}: rows of (original, masked, filled)")


def _compare(args: argparse.Namespace) -> None:
    from ..runs.compare import compare_runs

    paths = compare_runs(args.run_dirs, args.out)
    print(paths["markdown"].read_text(), end="")
    print(f"wrote {paths['markdown']}, {paths['csv']}, {paths['json']} and {paths['figure']}")


def _info(args: argparse.Namespace) -> None:
    from ..models import describe_model
    from ..runs import checkpoint_dirs, load_run, read_metrics

    run = load_run(args.run_dir)
    cfg = run.config
    n_params = sum(p.numel() for p in run.model.parameters())
    print(f"run        {run.dir}")
    print(f"data       {cfg.data.name}, example shape {tuple(run.data['shape'])}")
    print(f"model      {describe_model(cfg.model)}; {n_params:,} parameters")
    print(f"trained    step {run.step} of {cfg.train.steps}")
    print(f"checkpoints {', '.join(p.name for p in checkpoint_dirs(run.dir))}")
    train_rows = [r for r in read_metrics(run.dir) if r.get("kind", "train") == "train"]
    if train_rows:
        print(f"last loss  {train_rows[-1]['loss']:.5f} at step {train_rows[-1]['step']}")
    ev = run.dir / "eval.json"
    if ev.is_file():
        try:
            print("eval       " + json.dumps(json.loads(ev.read_text())["model"]))
        except (ValueError, KeyError, TypeError):
            print(f"eval       {ev} is unreadable; run `flowforge eval {run.dir}` again")


def build_parser() -> argparse.ArgumentParser:
    from ..solvers import GRIDS, SOLVERS

    from ..version import __version__

    parser = argparse.ArgumentParser(prog="flowforge", description="Flow-based generative models: train, sample, evaluate.")
    parser.add_argument("--version", action="version", version=f"flowforge {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a model from a YAML config",
                       description="Train a model. Overrides are dotted key=value pairs, e.g. train.steps=3000.")
    p.add_argument("config", help="YAML preset, e.g. configs/rf-checkerboard.yaml")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. train.steps=3000 model.net.width=256")
    p.add_argument("--resume", action="store_true", help="continue from the run's newest checkpoint")
    p.set_defaults(fn=_train)

    p = sub.add_parser("reflow", help="train the next rectified flow (or a k-step distillation) of a run on its "
                                      "own (noise, sample) pairs",
                       description="Draws --pairs noise vectors, integrates RUN_DIR's ODE to its samples (stored in "
                                   "checksummed, resumable shards under RUN_DIR/pairs/), then trains a new run on "
                                   "the pairs, starting from RUN_DIR's weights: the (k+1)-rectified flow, or with "
                                   "--distill K a K-step generator (sample it with --steps K).")
    p.add_argument("parent", metavar="RUN_DIR", help="the trained continuous run to straighten")
    p.add_argument("--pairs", type=int, required=True, help="number of (noise, sample) pairs, e.g. 50000")
    p.add_argument("--name", help="the new run's name (default: PARENT-reflow or PARENT-distillK)")
    p.add_argument("--distill", type=int, default=0, metavar="K",
                   help="train only at the K-step Euler grid's times: a K-step generator (default 0: reflow)")
    p.add_argument("--loss", choices=["l2", "pseudo-huber"], help="regression loss (default: the parent's, l2)")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. train.steps=2000 reflow.sampler=rk4")
    p.add_argument("--resume", action="store_true", help="continue the new run from its newest checkpoint")
    p.set_defaults(fn=_reflow)

    p = sub.add_parser("sample", help="draw samples from a trained run")
    p.add_argument("run_dir")
    p.add_argument("--n", type=int, default=1000, help="number of samples (default 1000)")
    p.add_argument("--out", required=True, help="output file: .npy (array) or .png (picture)")
    p.add_argument("--steps", type=int, help="sampler steps (default: the run's sample.steps)")
    p.add_argument("--sampler", choices=sorted(SOLVERS), help="sampler (default: the run's sample.sampler)")
    p.add_argument("--grid", choices=GRIDS, help="time grid (default: the run's)")
    p.add_argument("--guidance", type=float, help="classifier-free guidance weight (class-conditional models)")
    p.add_argument("--size", help="sample images at another HEIGHTxWIDTH (backbones that take several resolutions, "
                                  "e.g. DiT; the time grid gets SD3's resolution shift)")
    p.add_argument("--prompt", help="caption for every sample, e.g. \"ankle boot\" or \"a photo of a sneaker\" "
                                    "(text models, model.text.captions set); \"\" is the empty caption")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the network first: pays when sampling takes minutes (a sampler step took "
                        "0.77-0.84x of eager for the digits and MNIST U-Nets on one CPU thread, after 13-85 s of "
                        "compiling; docs/training.md)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(fn=_sample)

    p = sub.add_parser("eval", help="score samples against held-out data, the noise floor and a Gaussian baseline")
    p.add_argument("run_dir")
    p.add_argument("--n", type=int, help="number of samples (default: the run's eval.n_samples)")
    p.add_argument("--steps", type=int, help="sampler steps (default: the run's sample.steps)")
    p.add_argument("--sampler", choices=sorted(SOLVERS))
    p.add_argument("--grid", choices=GRIDS, help="time grid (default: the run's sample.grid)")
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

    p = sub.add_parser("compare", help="evaluated runs side by side: a table (markdown, CSV) and a figure",
                       description="Compare runs scored by `flowforge eval`: scores beside their noise floors, "
                                   "training time, parameters and sampling cost.")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    p.add_argument("--out", default="comparison", help="output stem: writes STEM.md, STEM.csv, STEM.json, "
                                                       "STEM.png (default: comparison)")
    p.set_defaults(fn=_compare)

    p = sub.add_parser("info", help="what a run holds: config, progress, checkpoints, metrics")
    p.add_argument("run_dir")
    p.set_defaults(fn=_info)

    from . import app, export  # subcommands in their own modules

    export.add_parser(sub)
    app.add_parser(sub)
    return parser


def _out_of_memory(err: BaseException) -> bool:
    import torch

    return isinstance(err, torch.OutOfMemoryError) or (isinstance(err, RuntimeError) and "allocate" in str(err))


def _describe_error(err: BaseException) -> str:
    """One line naming the cause (and the path, for an OS error); FLOWFORGE_DEBUG=1 shows the traceback."""
    if isinstance(err, OSError) and err.strerror:
        where = f"{err.filename}: " if err.filename else ""
        return f"{where}{err.strerror} (set FLOWFORGE_DEBUG=1 for the traceback)"
    if isinstance(err, MemoryError) or _out_of_memory(err):
        return f"out of memory ({err}); ask for fewer samples or a smaller batch"
    return f"{err} (set FLOWFORGE_DEBUG=1 for the traceback)"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # dotted overrides after an option (`reflow RUN --pairs N train.steps=10`) land here
        if hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
            args.overrides = [*args.overrides, *extra]
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    from ..config import MAX_SEED

    for name, least, most in (("n", 2 if args.command == "eval" else 1, None), ("steps", 1, None),
                              ("seed", 0, MAX_SEED)):
        value = getattr(args, name, None)
        if value is not None and (value < least or (most is not None and value > most)):
            bound = f"between {least} and {most}" if most is not None else f">= {least}"
            print(f"flowforge {args.command}: error: --{name} must be {bound}, got {value}", file=sys.stderr)
            return 2
    try:
        args.fn(args)
    except UserError as err:
        print(f"flowforge {args.command}: error: {err}", file=sys.stderr)
        return 2
    except (ValueError, OSError, MemoryError, RuntimeError) as err:
        # ValueError: an argument the library refused (a sampler option, a grid the sampler cannot use);
        # OSError / MemoryError: a path that cannot be written, a full disk, an allocation that failed; torch
        # reports a failed allocation as a RuntimeError. Any other RuntimeError is a bug: its traceback stays.
        if os.environ.get("FLOWFORGE_DEBUG") or (type(err) is RuntimeError and not _out_of_memory(err)):
            raise
        print(f"flowforge {args.command}: error: {_describe_error(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; the newest complete checkpoint is kept (continue with --resume)", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
