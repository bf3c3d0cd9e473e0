"""The command line is one module per verb over flowforge.jobs: every verb module is registered, once."""

import pkgutil

import flowforge.cli
from flowforge.cli.main import VERBS, build_parser


def test_every_verb_module_is_registered_once():
    modules = {m.name for m in pkgutil.iter_modules(flowforge.cli.__path__)} - {"main", "__main__"}
    assert sorted(v.__name__.rsplit(".", 1)[1] for v in VERBS) == sorted(modules)
    commands = build_parser()._subparsers._group_actions[0].choices
    assert list(commands) == ["train", "reflow", "sample", "eval", "inpaint", "compare", "info", "export", "app"]
