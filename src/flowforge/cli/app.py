"""``flowforge app RUN_DIR [RUN_DIR...]``: the browser app (registered by :mod:`.main`; needs the ``app`` extra)."""

from __future__ import annotations

import argparse


def _app(args: argparse.Namespace) -> None:
    import importlib.util

    from ..app import launch
    from ..errors import UserError

    if importlib.util.find_spec("gradio") is None:
        raise UserError("the app needs Gradio: pip install 'flowforge[app]' (or make install-app)")
    launch(args.run_dirs, host=args.host, port=args.port, share=False, device=args.device)


NAME = "app"
HELP = "a local web app to sample, inpaint and score trained runs (pip install 'flowforge[app]')"


def add_parser(sub) -> None:
    """The ``app`` subcommand on ``sub`` (argparse sub-parsers)."""
    p = sub.add_parser(NAME, help=HELP,
                       description="Serve a Gradio app with three tabs (Sample, Inpaint, Density) over the given "
                                   "runs or exported model folders, on this machine only unless --host says "
                                   "otherwise.")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories or model folders (flowforge export)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument("--device", default="auto",
                   help="where the models run: auto (the first GPU, else the CPU; the default), cpu, cuda or cuda:N")
    p.set_defaults(fn=_app)
