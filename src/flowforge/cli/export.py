"""``flowforge export RUN_DIR --out DIR``: a run as a shareable model folder (registered by :mod:`.main`)."""

from __future__ import annotations

import argparse


def _export(args: argparse.Namespace) -> None:
    from ..jobs import export_run, push_to_hub

    out = export_run(args.run_dir, args.out)
    print(f"wrote {out}: config.json, model.safetensors, README.md (model card), samples.png; "
          f"load it with flowforge.from_pretrained({str(out)!r})")
    if args.push:
        print(f"uploaded to {push_to_hub(out, args.push, private=args.private)}")


NAME, HELP = "export", "write a run as a shareable model folder (config.json, model.safetensors, model card)"


def add_parser(sub) -> None:
    """The ``export`` subcommand on ``sub`` (argparse sub-parsers)."""
    p = sub.add_parser(NAME, help=HELP,
                       description="Write the run's newest checkpoint (EMA weights) as a model folder in the Hugging "
                                   "Face layout: config.json, model.safetensors, a README.md model card with its "
                                   "scores and a sample picture. flowforge.from_pretrained(DIR) loads it; upload "
                                   "the folder to the Hub with --push USER/NAME (or hf upload USER/NAME DIR).")
    p.add_argument("run_dir", metavar="RUN_DIR", help="the trained run to export")
    p.add_argument("--out", required=True, help="the model folder to write (new, empty, or an earlier export)")
    p.add_argument("--push", metavar="USER/NAME", help="then upload the folder to this Hugging Face Hub repository "
                                                       "(created if needed; log in first: hf auth login)")
    p.add_argument("--private", action="store_true", help="with --push: create the repository private")
    p.set_defaults(fn=_export)
