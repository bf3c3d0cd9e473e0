"""``flowforge`` command line: thin argument parsing over the library's jobs (:mod:`flowforge.jobs`).

Each verb is one module of this package with an ``add_parser(sub)`` that declares its arguments and the function
it calls; :data:`VERBS` lists them in the order ``flowforge --help`` shows. This module keeps what every verb
shares: the bounds of ``--n``, ``--steps`` and ``--seed``, and how a failure becomes one line and an exit code.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

from ..errors import UserError
from . import app, compare, evaluate, export, info, inpaint, reflow, sample, train

VERBS = (train, reflow, sample, evaluate, inpaint, compare, info, export, app)  # each: add_parser(sub)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole command line; with ``only``, that verb in full and the others by name and help alone, so that
    ``flowforge --help`` and ``--version`` answer without importing torch (which a verb's choices need)."""
    from ..version import __version__

    parser = argparse.ArgumentParser(prog="flowforge",
                                     description="Flow-based generative models: train, sample, evaluate.")
    parser.add_argument("--version", action="version", version=f"flowforge {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for verb in VERBS:
        if only is None or only == verb.NAME:
            verb.add_parser(sub)
        else:
            sub.add_parser(verb.NAME, help=verb.HELP)
    return parser


def _verb_of(argv: list[str]) -> str:
    """The verb ``argv`` asks for ("" when none: top-level --help or --version)."""
    return argv[0] if argv and argv[0] in {verb.NAME for verb in VERBS} else ""


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


def _cli_warning(message, category, filename, lineno, line=None) -> str:
    """A warning as one line of the command's output, not a Python source location."""
    return f"flowforge: warning: {message}\n"


def main(argv: list[str] | None = None) -> int:
    previous = warnings.formatwarning
    warnings.formatwarning = _cli_warning
    try:
        return _main(argv)
    finally:
        warnings.formatwarning = previous


def _main(argv: list[str] | None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(only=_verb_of(argv))
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
