"""``flowforge reflow RUN_DIR --pairs N``: train the next rectified flow (or a K-step distillation) of a run on its own
(noise, sample) pairs (:mod:`flowforge.jobs.reflow`). Registered in :data:`.main.VERBS`."""

from __future__ import annotations

import argparse

from .sample import add_device_argument


def _reflow(args: argparse.Namespace) -> None:
    from ..jobs import reflow_config
    from ..train import train

    config = reflow_config(args.parent, pairs=args.pairs, name=args.name, distill=args.distill, loss=args.loss,
                           overrides=args.overrides, device=args.device)
    result = train(config, resume=args.resume)
    print(f"trained {result.step} steps on {args.pairs} pairs of {args.parent} in {result.seconds:.1f} s "
          f"-> {result.run_dir}")


NAME = "reflow"
HELP = "train the next rectified flow (or a k-step distillation) of a run on its own (noise, sample) pairs"


def add_parser(sub) -> None:
    """The ``reflow`` subcommand on ``sub`` (argparse sub-parsers)."""
    p = sub.add_parser(NAME, help=HELP,
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
    add_device_argument(p)
    p.set_defaults(fn=_reflow)
