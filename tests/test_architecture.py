"""The layer rules are checked, not described: pyproject.toml's import-linter contracts hold for the tree.

import-linter is in the ``test`` extra, so this runs wherever the tests do (``make test`` runs ``lint-imports``
first as well, for its readable report).
"""

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = sorted(p.stem if p.is_file() else p.name for p in (ROOT / "src" / "flowforge").iterdir()
                  if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").is_file())


def contracts() -> list[dict]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


def test_the_import_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    lint = str(lint) if lint.exists() else shutil.which("lint-imports")
    assert lint, "lint-imports not found: install the test extra (pip install -e '.[test]'), which has import-linter"
    run = subprocess.run([lint, "--no-cache", "--no-logo"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, "a wrong-way import:\n" + run.stdout[run.stdout.find("Broken contracts"):] + run.stderr


def test_every_package_has_a_layer():
    layers = next(c for c in contracts() if c["type"] == "layers")
    named = {name.strip() for layer in layers["layers"] for name in layer.replace(":", "|").split("|")}
    assert layers["exhaustive"] and named == set(PACKAGES), set(PACKAGES) ^ named


def test_the_math_and_the_backbones_are_forbidden_every_other_package():
    # import-linter has no "everything but", so these forbidden lists are written out: they must name every package
    # but the shared leaves (errors, rng), or a new package would slip through
    math = {"nets", "paths", "solvers", "transforms"}
    checked = set()
    for contract in contracts():
        sources = {m.removeprefix("flowforge.") for m in contract.get("source_modules", [])}
        if contract["type"] != "forbidden" or not sources <= math:
            continue
        forbidden = {m.removeprefix("flowforge.") for m in contract["forbidden_modules"] if m.startswith("flowforge.")}
        assert forbidden | sources | {"errors", "rng"} == set(PACKAGES), contract["name"]
        checked |= sources
    assert checked == math
