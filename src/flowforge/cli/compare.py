"""``flowforge compare RUN_DIR...``: evaluated runs side by side (:mod:`flowforge.jobs.compare`). Registered in
:data:`.main.VERBS`."""

from __future__ import annotations

import argparse


def _compare(args: argparse.Namespace) -> None:
    from ..jobs import compare_runs

    paths = compare_runs(args.run_dirs, args.out)
    print(paths["markdown"].read_text(), end="")
    print(f"wrote {paths['markdown']}, {paths['csv']}, {paths['json']} and {paths['figure']}")


NAME, HELP = "compare", "evaluated runs side by side: a table (markdown, CSV) and a figure"


def add_parser(sub) -> None:
    """The ``compare`` subcommand on ``sub`` (argparse sub-parsers)."""
    p = sub.add_parser(NAME, help=HELP,
                       description="Compare runs scored by `flowforge eval`: scores beside their noise floors, "
                                   "training time, parameters and sampling cost.")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="runs scored by flowforge eval")
    p.add_argument("--out", default="comparison", help="output stem: writes STEM.md, STEM.csv, STEM.json, "
                                                       "STEM.png (default: comparison)")
    p.set_defaults(fn=_compare)
