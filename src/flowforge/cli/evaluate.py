"""``flowforge eval RUN_DIR``: score samples and likelihood beside the noise floor and a matched Gaussian
(:mod:`flowforge.jobs.evaluate`). Registered in :data:`.main.VERBS`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .sample import add_sampling_arguments


def _eval(args: argparse.Namespace) -> None:
    from ..jobs import evaluate
    from ..runs.report import eval_tables

    record = evaluate(args.run_dir, n_samples=args.n, sampler=args.sampler, steps=args.steps, grid=args.grid,
                      n_likelihood=args.n_likelihood, progress=sys.stderr.isatty(), device=args.device)
    print("\n".join(eval_tables(record)))
    print(f"stored in {Path(args.run_dir) / 'eval.json'}")


NAME, HELP = "eval", "score samples against held-out data, the noise floor and a Gaussian baseline"


def add_parser(sub) -> None:
    """The ``eval`` subcommand on ``sub`` (argparse sub-parsers)."""
    p = sub.add_parser(NAME, help=HELP, description=(
        "Score a run: draw samples and compare them with held-out data (energy distance, sliced W2, exact W2 in "
        "2-D; FD/KD/precision/recall on images) beside the noise floor and a matched Gaussian, and the held-out "
        "likelihood (bits/dim). Writes RUN_DIR/eval.json and samples/eval.png."))
    p.add_argument("run_dir", metavar="RUN_DIR", help="the run to score")
    p.add_argument("--n", type=int, help="number of samples (default: the run's eval.n_samples)")
    add_sampling_arguments(p)
    p.add_argument("--n-likelihood", type=int, dest="n_likelihood",
                   help="held-out examples scored by the likelihood, the first N (default: eval.n_likelihood; 0 = all)")
    p.set_defaults(fn=_eval)
