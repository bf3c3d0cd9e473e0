"""Plant known bugs, one at a time, in a copy of src/ and check that the default test run catches each.

Each plant is (file, old snippet, new snippet): the bugs of issue 30's table, which the suite once let through.
The copy of src/ goes first on PYTHONPATH (ahead of the editable install), the plant's tests run from the
repository root (its tests/ and configs/), and a plant counts as caught when pytest reports failed tests (exit 1).
A snippet that is no longer in its file is an error, never a silent pass: rewrite the plant against the new code.

    python tools/plant_bugs.py              # every plant
    python tools/plant_bugs.py --only dpm   # plants whose name contains "dpm"
    python tools/plant_bugs.py --baseline   # first run each plant's tests on the unplanted copy (must pass)
    python tools/plant_bugs.py --check      # only check that every snippet is still in its file
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Plant:
    name: str
    file: str  # relative to src/flowforge
    old: str
    new: str
    tests: tuple[str, ...]  # pytest arguments, from the repository root: the default run's tests that must catch it


PLANTS = [
    Plant("flow loss sign flipped (maximises the NLL)", "flows/flow.py",
          "return -(self.log_prob_flow(self.to_flow_input(x, u)", "return (self.log_prob_flow(self.to_flow_input(x, u)",
          ("tests/test_flows.py",)),
    Plant("coupling layer's learned scale dropped", "transforms/affine_coupling.py",
          "log_s = self.scale_factor * torch.tanh(raw)", "log_s = torch.tanh(raw)",
          ("tests/test_transforms.py", "tests/test_flows.py", "tests/test_gradients_reach.py")),
    Plant("min/max slip in the min-SNR weight", "models/objectives/regression.py",
          "return c.snr.clamp(max=5.0)", "return c.snr.clamp(min=5.0)",
          ("tests/test_loss_weights.py", "tests/test_continuous.py")),
    Plant("metrics log's NaN filter dropped", "runs/metrics_log.py",
          "and math.isfinite(record[k]) for k in", "and True for k in",
          ("tests/test_metrics_log.py",)),
    Plant("biased (divide by n) feature covariance", "metrics/frechet.py",
          "sigma=torch.cov(f.T)", "sigma=torch.cov(f.T, correction=0)",
          ("tests/test_feature_stats.py", "tests/test_image_metrics.py")),
    Plant("DPM-Solver++(2M) multistep coefficient perturbed (1/2r -> 1/2.2r)", "solvers/dpm_solver.py",
          'd = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * ctx.memory["denoised"]',
          'd = (1 + 1 / (2.2 * r)) * denoised - (1 / (2.2 * r)) * ctx.memory["denoised"]',
          ("tests/test_solver_order.py", "tests/test_paths_solvers.py")),
]


def run_tests(src: Path, tests: tuple[str, ...], stop_first: bool) -> tuple[int, str, float]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
           "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *(["-x"] if stop_first else []), *tests]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.strip()] or ["(no output)"]
    failed = [line.split()[1] for line in lines if line.startswith(("FAILED ", "ERROR "))]
    return proc.returncode, f"{lines[-1]}{': ' + failed[0] if failed else ''}", time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help="run the plants whose name contains this text")
    parser.add_argument("--baseline", action="store_true", help="check first that each plant's tests pass unplanted")
    parser.add_argument("--check", action="store_true", help="only check that every plant's snippet still applies")
    args = parser.parse_args(argv)
    plants = [p for p in PLANTS if args.only is None or args.only.lower() in p.name.lower()]
    missing = []
    for p in plants:
        text = (ROOT / "src" / "flowforge" / p.file).read_text() if (ROOT / "src/flowforge" / p.file).is_file() else ""
        if text.count(p.old) != 1:
            missing.append(f"{p.name}: {p.file} holds the snippet {text.count(p.old)} times (needs exactly 1): "
                           f"{p.old!r}")
    if missing:
        print("plants that no longer apply (rewrite them against the current code):\n  " + "\n  ".join(missing))
        return 2
    if args.check:
        print(f"all {len(plants)} plants apply")
        return 0
    caught_all = True
    with tempfile.TemporaryDirectory(prefix="flowforge-plants-") as tmp:
        src = Path(tmp) / "src"
        shutil.copytree(ROOT / "src", src, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        if args.baseline:
            for tests in sorted({p.tests for p in plants}):
                code, last, seconds = run_tests(src, tests, stop_first=False)
                print(f"baseline {' '.join(tests)}: {'passed' if code == 0 else 'FAILED'} ({last}, {seconds:.0f} s)")
                if code != 0:
                    return 2
        for p in plants:
            path = src / "flowforge" / p.file
            original = path.read_text()
            path.write_text(original.replace(p.old, p.new))
            try:
                code, last, seconds = run_tests(src, p.tests, stop_first=True)
            finally:
                path.write_text(original)
            caught = code == 1  # tests ran and failed; 2-5 are errors or nothing collected, not a catch
            caught_all &= caught
            print(f"{'caught' if caught else 'NOT CAUGHT'}: {p.name} [{p.file}] by {' '.join(p.tests)} "
                  f"({last}, exit {code}, {seconds:.0f} s)", flush=True)
    print("every plant was caught" if caught_all else "some plants were NOT caught")
    return 0 if caught_all else 1


if __name__ == "__main__":
    sys.exit(main())
