"""``flowforge sample RUN_DIR --n N --out FILE``: samples to ``.npy`` or ``.png`` (:mod:`flowforge.jobs.sample`).
Registered in :data:`.main.VERBS`."""

from __future__ import annotations

import argparse
import sys


def _sample(args: argparse.Namespace) -> None:
    from ..jobs import sample_run

    sample_run(args.run_dir, n=args.n, out=args.out, seed=args.seed, size=args.size, prompt=args.prompt,
               compile=args.compile, progress=sys.stderr.isatty(), sampler=args.sampler, steps=args.steps,
               grid=args.grid, guidance=args.guidance, context=args.context, device=args.device)
    print(f"wrote {args.n} samples to {args.out}")


NAME, HELP = "sample", "draw samples from a trained run"


def add_device_argument(p) -> None:
    """``--device auto|cpu|cuda|cuda:N`` (``sample``, ``eval``, ``reflow``), resolved when the job runs by
    :func:`flowforge.jobs.device.resolve_device`, which refuses a GPU the machine does not have."""
    p.add_argument("--device", default="auto", metavar="DEVICE",
                   help="where the network runs: auto, cpu, cuda or cuda:N (default auto: the first CUDA GPU when "
                        "PyTorch sees one, else the CPU); one seed draws other noise on a GPU than on the CPU")


def add_sampling_arguments(p) -> None:
    """``--steps``, ``--sampler`` and ``--grid``, each overriding the run's ``sample`` section, and ``--device``:
    what ``sample`` and ``eval`` draw with."""
    from ..solvers import GRIDS, SOLVERS

    p.add_argument("--steps", type=int, help="sampler steps (default: the run's sample.steps)")
    p.add_argument("--sampler", choices=sorted(SOLVERS), help="sampler (default: the run's sample.sampler)")
    p.add_argument("--grid", choices=GRIDS, help="time grid (default: the run's sample.grid)")
    add_device_argument(p)


def add_parser(sub) -> None:
    """The ``sample`` subcommand on ``sub`` (argparse sub-parsers)."""
    p = sub.add_parser(NAME, help=HELP, description=(
        "Draw samples of a trained run (its newest checkpoint, EMA weights) with the run's sample settings, any of "
        "them overridden here, and write them as an array (.npy, model space) or a picture (.png)."))
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory (flowforge train) or a model folder")
    p.add_argument("--n", type=int, default=1000, help="number of samples (default 1000)")
    p.add_argument("--out", required=True, help="output file: .npy (array) or .png (picture)")
    add_sampling_arguments(p)
    p.add_argument("--guidance", type=float, help="classifier-free guidance weight (class-conditional models)")
    p.add_argument("--size", help="sample images at another HEIGHTxWIDTH (backbones that take several resolutions, "
                                  "e.g. DiT; the time grid gets SD3's resolution shift)")
    p.add_argument("--prompt", help="caption for every sample, e.g. \"ankle boot\" or \"a photo of a sneaker\" "
                                    "(text models, model.text.captions set); \"\" is the empty caption")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the network first: pays when sampling takes minutes (a sampler step took "
                        "0.77-0.84x of eager for the digits and MNIST U-Nets on one CPU thread, after 13-85 s of "
                        "compiling; docs/training.md)")
    p.add_argument("--context", help="comma-separated context vector c of a conditional flow (data.context_columns), "
                                     "e.g. 0.1,0.3: every sample is drawn from p(x | c)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the noise (default 0)")
    p.set_defaults(fn=_sample)
