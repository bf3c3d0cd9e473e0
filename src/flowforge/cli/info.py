"""``flowforge info RUN_DIR``: what a run holds: config, progress, checkpoints, metrics. Registered in
:data:`.main.VERBS`."""

from __future__ import annotations

import argparse
import json


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


NAME, HELP = "info", "what a run holds: config, progress, checkpoints, metrics"


def add_parser(sub) -> None:
    """The ``info`` subcommand on ``sub`` (argparse sub-parsers)."""
    p = sub.add_parser(NAME, help=HELP, description=(
        "Print what a run holds: its model, data and training settings, the step it reached, its checkpoints "
        "and the last logged metrics and scores."))
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory")
    p.set_defaults(fn=_info)
