"""``flowforge inpaint RUN_DIR --mask M --out FILE.png``: fill masked parts of held-out images
(:mod:`flowforge.jobs.inpaint`). Registered in :data:`.main.VERBS`."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from ..errors import UserError


def _inpaint(args: argparse.Namespace) -> None:
    from ..jobs import inpaint_run

    if Path(args.out).suffix != ".png":
        raise UserError(f"--out {args.out}: inpainting writes a picture; give a .png path")
    if args.lr is not None and not (math.isfinite(args.lr) and args.lr > 0):
        raise UserError(f"--lr {args.lr}: expected a positive finite step size, e.g. --lr 0.001")
    for flag, value in (("--noise", args.noise), ("--temperature", args.temperature)):
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise UserError(f"{flag} {value}: expected a finite value >= 0, e.g. {flag} 1.0")
    options = {k: v for k, v in (("steps", args.steps), ("lr", args.lr), ("line_search", args.line_search),
                                 ("noise", args.noise), ("temperature", args.temperature),
                                 ("start", args.start), ("sampler", args.sampler), ("resample", args.resample))
               if v is not None}
    path = inpaint_run(args.run_dir, args.mask, n=args.n, out=args.out, seed=args.seed, device=args.device,
                       **options)
    print(f"wrote {path}: rows of (original, masked, filled)")


NAME, HELP = "inpaint", "fill masked parts of held-out images; writes (original, masked, filled)"


def add_parser(sub) -> None:
    """The ``inpaint`` subcommand on ``sub`` (argparse sub-parsers)."""
    from ..jobs.inpaint import INPAINT_STARTS
    from ..solvers import SOLVERS
    from .sample import add_device_argument

    p = sub.add_parser(NAME, help=HELP, description=(
        "Hide part of N held-out images (--mask), let the run's model fill it in (replacement or RePaint for "
        "continuous models, gradient ascent on the likelihood for normalizing flows), and write a picture of "
        "original, masked and filled rows."))
    p.add_argument("run_dir", metavar="RUN_DIR", help="a trained image run")
    p.add_argument("--mask", required=True, help="what is missing: NICE's top, bottom, odd, even, left, right, "
                   "middle-vertical, middle-horizontal, random:0.75, random:0.9; or center, random:P")
    p.add_argument("--n", type=int, default=8, help="number of images (default 8)")
    p.add_argument("--out", required=True, help="output picture (.png)")
    p.add_argument("--steps", type=int, help="optimisation / sampling steps of the model's inpainting")
    p.add_argument("--lr", type=float, help="(first) step size of gradient-based inpainting (normalizing flows)")
    p.add_argument("--line-search", action=argparse.BooleanOptionalAction, default=None,
                   help="flows: a step size per image that keeps log p rising (default); --no-line-search follows "
                   "NICE's fixed schedule lr*100/(100+i)")
    p.add_argument("--noise", type=float, help="flows, --no-line-search: NICE's gradient noise (1 = the paper's)")
    p.add_argument("--temperature", type=float, help="flows, --no-line-search: Langevin noise at this temperature")
    p.add_argument("--start", choices=INPAINT_STARTS, help="flows: where the ascent starts the missing part: "
                   "uniform noise (NICE's, the default) or the training set's mean image")
    p.add_argument("--sampler", choices=sorted(SOLVERS), help="sampler (continuous models; default: sample.sampler)")
    p.add_argument("--resample", type=int, help="RePaint resampling per step (continuous models; default 1)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the images' choice and the noise (default 0)")
    add_device_argument(p)
    p.set_defaults(fn=_inpaint)
