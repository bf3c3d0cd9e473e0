"""``flowforge train CONFIG [key=value ...]``: train a model from a YAML config. Registered in :data:`.main.VERBS`."""

from __future__ import annotations

import argparse
import os
import sys


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


NAME, HELP = "train", "train a model from a YAML config"


def add_parser(sub) -> None:
    """The ``train`` subcommand on ``sub`` (argparse sub-parsers)."""
    p = sub.add_parser(NAME, help=HELP,
                       description="Train a model. Overrides are dotted key=value pairs, e.g. train.steps=3000.")
    p.add_argument("config", help="YAML preset, e.g. configs/rf-checkerboard.yaml")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. train.steps=3000 model.net.width=256")
    p.add_argument("--resume", action="store_true", help="continue from the run's newest checkpoint")
    p.set_defaults(fn=_train)
