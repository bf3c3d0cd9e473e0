"""Mutation testing of the core with cosmic-ray: each module's mutants against its own tests (``make mutate``).

cosmic-ray edits the files it mutates in place, so this runs in a copy of the tree (src/, tests/, configs/,
pyproject.toml) under a temporary folder, with the copy's src/ first on PYTHONPATH (ahead of the editable
install). A group is a module path and the tests that own it; each group is one cosmic-ray session. The summary
printed at the end (mutants, killed, survived, per group) is what docs/contributing.md records; the surviving
mutants are listed with their place and change, to be killed by a test or judged equivalent.

    python tools/mutate.py --cosmic-ray PATH/TO/cosmic-ray [--only paths,frechet] [--files linear.py,...]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTEST = "-m pytest -x -q -p no:cacheprovider --no-header -o addopts= -m 'not slow'"


@dataclass(frozen=True)
class Group:
    module: str  # a package folder or one file, relative to the root
    tests: tuple[str, ...]  # the module's own tests: pytest arguments, one string per pytest run (a -k is its own)


GROUPS = {
    "paths": Group("src/flowforge/paths", (
        "tests/test_paths.py tests/test_paths_solvers.py tests/test_loss_weights.py",
        "tests/test_continuous.py -k 'path or sigma or conversion or prediction or weight'")),
    "transforms": Group("src/flowforge/transforms", (
        "tests/test_transforms.py tests/test_layers.py tests/test_flows.py tests/test_gradients_reach.py",)),
    "solvers": Group("src/flowforge/solvers", (
        "tests/test_paths_solvers.py tests/test_solver_order.py tests/test_straightness.py",
        "tests/test_continuous.py -k 'sampler or order or likelihood or grid or inpaint'")),
    "frechet": Group("src/flowforge/metrics/frechet.py", (
        "tests/test_feature_stats.py", "tests/test_image_metrics.py -k 'fd_ or frechet or feature_stats'")),
    "objectives": Group("src/flowforge/models/objectives", (
        "tests/test_loss_weights.py tests/test_continuous.py tests/test_mean_flow.py tests/test_registries.py",)),
}


def copy_tree(dst: Path) -> None:
    for name in ("src", "tests", "configs"):
        shutil.copytree(ROOT / name, dst / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copy(ROOT / "pyproject.toml", dst / "pyproject.toml")


# Operators left out: a shift, bitwise or modulo operator in place of arithmetic on float tensors raises a
# TypeError on the first line that runs it (killed by any test that reaches the line), at the cost of a test run
# each: they were three in five of all mutants. "is" for "==" and back is left out as well.
EXCLUDED_OPERATORS = ["core/ReplaceBinaryOperator_.*_(LShift|RShift|BitOr|BitAnd|BitXor|FloorDiv|Mod)$",
                      "core/ReplaceComparisonOperator_.*_(Is|IsNot)$"]


def config(group: Group, python: str, timeout: float, excluded: list[str]) -> str:
    test = " && ".join(f"env PYTHONPATH=src OMP_NUM_THREADS=1 {python} {PYTEST} {tests}" for tests in group.tests)
    return (f'[cosmic-ray]\nmodule-path = "{group.module}"\ntimeout = {timeout}\n'
            f"excluded-modules = {json.dumps(excluded)}\ntest-command = {json.dumps(test)}\n"
            f'\n[cosmic-ray.distributor]\nname = "local"\n'
            f"\n[cosmic-ray.filters.operators-filter]\nexclude-operators = {json.dumps(EXCLUDED_OPERATORS)}\n")


def run_group(name: str, group: Group, work: Path, cosmic_ray: str, python: str, timeout: float,
              files: list[str] | None) -> dict:
    module = work / group.module
    excluded = []
    if files and module.is_dir():  # mutate only the named files of the package
        excluded = [str(p.relative_to(work)) for p in module.glob("*.py") if p.name not in files]
    cfg, session = work / f"{name}.toml", work / f"{name}.sqlite"
    cfg.write_text(config(group, python, timeout, excluded))
    subprocess.run([cosmic_ray, "init", str(cfg), str(session)], cwd=work, check=True)
    subprocess.run([str(Path(cosmic_ray).with_name("cr-filter-operators")), str(session), str(cfg)], cwd=work,
                   check=True)
    baseline = subprocess.run([cosmic_ray, "baseline", str(cfg)], cwd=work, capture_output=True, text=True)
    if baseline.returncode != 0:
        raise SystemExit(f"{name}: the tests fail on the unmutated code:\n{baseline.stdout}{baseline.stderr}")
    subprocess.run([cosmic_ray, "exec", str(cfg), str(session)], cwd=work, check=True)
    dump = subprocess.run([cosmic_ray, "dump", str(session)], cwd=work, capture_output=True, text=True, check=True)
    counts = {"mutants": 0, "killed": 0, "survived": 0, "incompetent": 0}
    survivors = []
    for line in dump.stdout.splitlines():
        item, result = json.loads(line)
        if result is None or result["worker_outcome"] == "skipped":  # left out by the operator filter
            continue
        counts["mutants"] += 1
        outcome = result["test_outcome"]
        counts["killed" if outcome == "killed" else "survived" if outcome == "survived" else "incompetent"] += 1
        if outcome == "survived":
            m = item["mutations"][0]
            changed = [line[1:].strip() for line in (result.get("diff") or "").splitlines()
                       if line[:1] == "+" and not line.startswith("+++")]
            survivors.append(f"{m['module_path']}:{m['start_pos'][0]} {m['operator_name']} #{m['occurrence']}: "
                             f"{' / '.join(changed)}")
    return {"group": name, **counts, "survivors": survivors}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cosmic-ray", default="cosmic-ray", help="the cosmic-ray executable")
    parser.add_argument("--only", help=f"comma-separated groups of {', '.join(GROUPS)} (default: all)")
    parser.add_argument("--files", help="comma-separated file names: mutate only these files of a package group")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per mutant's test run")
    parser.add_argument("--out", type=Path, help="write the summary as JSON here too")
    args = parser.parse_args(argv)
    names = args.only.split(",") if args.only else list(GROUPS)
    unknown = [n for n in names if n not in GROUPS]
    if unknown:
        parser.error(f"unknown group {', '.join(unknown)}; choose from {', '.join(GROUPS)}")
    python = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").is_dir() else sys.executable
    cosmic_ray = shutil.which(args.cosmic_ray)  # an absolute path: the sessions run in the copy
    if cosmic_ray is None:
        parser.error(f"no cosmic-ray at {args.cosmic_ray!r}: make mutate installs it into .venv/cosmic-ray")
    cosmic_ray = str(Path(cosmic_ray).resolve())
    results = []
    with tempfile.TemporaryDirectory(prefix="flowforge-mutate-") as tmp:
        work = Path(tmp)
        copy_tree(work)
        for name in names:
            if not (work / GROUPS[name].module).exists():
                raise SystemExit(f"{name}: {GROUPS[name].module} does not exist")
            results.append(run_group(name, GROUPS[name], work, cosmic_ray, python, args.timeout,
                                     args.files.split(",") if args.files else None))
    for r in results:
        print(f"{r['group']}: {r['mutants']} mutants, {r['killed']} killed, {r['survived']} survived, "
              f"{r['incompetent']} incompetent (timeouts, errors)")
        for s in r["survivors"]:
            print(f"  survived: {s}")
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
