"""What every benchmark script records next to its numbers, written once.

- ``flowforge_source()``: which flowforge was measured (where it was imported from, its git commit, the files
  changed and not committed at run time);
- ``machine()``: the platform, CPU model, torch's CPU capability and native-bf16 flag, thread count and versions;
- ``mean_std(values)``: mean and sample standard deviation of repeats;
- ``rss_mb()``, ``reset_peak_rss()``, ``peak_rss_mb()``: a step's peak memory on CPU (Linux ``VmHWM``);
- ``write_results(name, record)``: ``benchmarks/results/<name>.json`` with the record under a block of date,
  command, machine and source, so that a figure in the README can be traced to the run that produced it
  (``benchmarks/render_tables.py`` renders the README's tables from these files).

Nothing here imports flowforge (``find_spec`` locates it without running it), so a script's record can be
written, and ``render_tables.py`` can run, while the library is being edited.
"""

from __future__ import annotations

import datetime
import importlib.util
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def docs_figure(figure: str | None, out: str | None, name: str) -> str:
    """A script's ``--figure``: as given, else ``docs/<name>`` when the results go to their default file, else ''
    (no figure), so that a trial run with its own ``--out`` never replaces the docs' figure."""
    if figure is not None:
        return figure
    return str(RESULTS.parent.parent / "docs" / name) if out is None else ""


def _git(root: Path, *cmd: str) -> str:
    try:
        return subprocess.run(["git", *cmd], cwd=root, capture_output=True, text=True, timeout=10,
                              check=False).stdout.rstrip()
    except (OSError, subprocess.SubprocessError):
        return ""


def flowforge_source() -> dict:
    """Where flowforge is imported from, its git commit and the uncommitted files under src/ and benchmarks/.

    ``uncommitted`` lists ``git status --porcelain`` lines (results files left out): a non-empty list means the
    numbers come from code that no commit holds.
    """
    spec = importlib.util.find_spec("flowforge")
    if spec is None or spec.origin is None:
        return {"path": None, "commit": "", "uncommitted": []}
    package = Path(spec.origin).resolve().parent
    root = package.parents[1]  # <root>/src/flowforge
    status = _git(root, "status", "--porcelain", "--", "src", "benchmarks", ":(exclude)benchmarks/results")
    return {"path": str(package), "commit": _git(root, "rev-parse", "HEAD"), "uncommitted": status.splitlines()}


def cpu_model() -> str:
    """The CPU's marketing name (``/proc/cpuinfo``'s ``model name`` on Linux), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict:
    """The machine a measurement ran on: the facts that move CPU timings and bf16 results."""
    import torch

    try:
        bf16 = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        bf16 = None  # this torch cannot tell
    try:
        load = [round(x, 2) for x in os.getloadavg()]  # other processes on a shared machine move every timing
    except OSError:
        load = None
    return {"platform": platform.platform(), "cpu": cpu_model(), "cpu_count": os.cpu_count(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(), "mkldnn_bf16_supported": bf16,
            "threads": torch.get_num_threads(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "load_average_1_5_15_min": load, "torch": torch.__version__, "python": platform.python_version()}


def command_line(argv: list[str] | None = None) -> str:
    """The command that ran this script, with ``OMP_NUM_THREADS`` when set (it changes every timing)."""
    argv = sys.argv if argv is None else argv
    threads = os.environ.get("OMP_NUM_THREADS")
    return " ".join(([f"OMP_NUM_THREADS={threads}"] if threads else []) + [".venv/bin/python"]
                    + [shlex.quote(a) for a in argv])


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def rss_mb() -> float:
    """This process's resident set now, MB (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    """The peak resident set of this process's memory (``VmHWM``), MB (Linux). Not ``ru_maxrss``: Linux carries
    that over ``execve`` from the forking parent, so a worker started by a large parent reports the parent's size."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024


def reset_peak_rss() -> None:
    """Start ``VmHWM`` again from the current resident set (``/proc/self/clear_refs`` 5, Linux 4.0+): with
    :func:`rss_mb` before and :func:`peak_rss_mb` after, the peak memory of a step on CPU, where torch keeps no
    allocator statistics."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def now() -> str:
    """The local time with its offset, to the second: the ``date`` of a results file."""
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def write_results(name: str, record: dict, path: str | Path | None = None) -> Path:
    """Write ``record`` to ``benchmarks/results/<name>.json`` (or ``path``) under a block of date, command,
    machine and flowforge source; a key of ``record`` with one of those names wins. Returns the path."""
    out = Path(path) if path is not None else RESULTS / f"{name}.json"
    head = {"benchmark": name, "date": now(),
            "command": command_line(), "machine": machine(), "flowforge_source": flowforge_source()}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")  # whole or not at all, even when killed mid-write
    tmp.write_text(json.dumps({**head, **record}, indent=1, default=float) + "\n")
    os.replace(tmp, out)
    return out


def read_results(name: str) -> dict:
    """``benchmarks/results/<name>.json`` as written by ``write_results``."""
    return json.loads((RESULTS / f"{name}.json").read_text())
