"""The layer diagram of DESIGN.md holds in the code: every import of the package points down.

A module may import only from layers below its own, function-local imports included (they used to hide
cycles). The ranks are DESIGN.md's whiteboard: math that knows nothing else at the bottom, then the config,
data, models, run directories, the training loop, and the CLI on top.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "src" / "flowforge"

RANKS = {
    # pure: torch and the standard library, at most the package's error types
    "errors": 0, "rng": 0, "viz": 0, "nets": 0, "version": 0,
    "paths": 1, "transforms": 1, "solvers": 1,
    "config": 2,  # its choices come from the path and sampler registries
    "data": 3,
    "metrics": 4, "protocol": 4,
    "flows": 5,
    "models": 6,
    "runs": 7,  # knows models and files, no training loop
    "train": 8,  # writes through runs
    "jobs": 9,  # what a user does with a trained run: evaluate, inpaint, compare, export, reflow
    "app": 10,  # the browser app: plain functions over jobs and runs, a Gradio page over them
    "cli": 11, "__init__": 12, "__main__": 12,
}


def layer_of(path: Path) -> str:
    rel = path.relative_to(ROOT)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def imported_layers(path: Path) -> set[str]:
    """The package's top-level modules that ``path`` imports, however deep in a function."""
    rel = path.relative_to(ROOT)
    package = list(rel.parts[:-1])
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)]
                target = base + (node.module.split(".") if node.module else [a.name for a in node.names][:1])
            elif node.module and node.module.split(".")[0] == "flowforge":
                target = node.module.split(".")[1:]
            else:
                continue
        elif isinstance(node, ast.Import):
            names = [a.name.split(".") for a in node.names if a.name.split(".")[0] == "flowforge"]
            target = names[0][1:] if names else []
        else:
            continue
        if target:
            out.add(target[0])
    return out - {layer_of(path)}


MODULES = sorted(ROOT.rglob("*.py"))


def test_every_module_has_a_layer():
    assert {layer_of(p) for p in MODULES} <= set(RANKS), "a new top-level module needs a rank here and in DESIGN.md"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_point_down(path):
    rank = RANKS[layer_of(path)]
    upward = sorted(t for t in imported_layers(path) if RANKS.get(t, 99) >= rank)
    assert not upward, f"{path.relative_to(ROOT)} (layer {layer_of(path)}) imports {upward}, which are not below it"
