"""What every benchmark records next to its numbers, and how it resumes, written once.

- the machine record: :func:`machine` (platform, CPU model, ``torch.backends.cpu.get_cpu_capability()``, native
  bf16 or not, threads, load average, versions) and :func:`flowforge_source` (git commit and uncommitted files);
- timing: :func:`seconds_of` (wall-clock seconds of repeated calls), :func:`mean_std`, and a step's peak memory
  on CPU (:func:`rss_mb`, :func:`reset_peak_rss`, :func:`peak_rss_mb`);
- results files: :func:`write_results` writes ``benchmarks/results/<name>.json`` under a block of date, command,
  machine and source, whole or not at all, with every path inside the repository written relative to it
  (:func:`portable`), so no results file names the machine's directories; :func:`figure_path` puts a figure
  beside its results file (never into ``docs/``: ``tools/publish_figures.py`` copies the published ones there);
- resumable keyed rows: :class:`KeyedRows` keeps the rows of an earlier results file that match what a call would
  compute (same protocol, same key: the weights' sha256, the NFE, ...), so a second call computes only the rows
  missing; :class:`SecondsLedger` keeps, under a lock, what each expensive step (a training) cost, so a later call
  that only scores still reports it.

Run a benchmark from the repository root as a module: ``.venv/bin/python -m benchmarks.NAME``. Nothing here
imports flowforge (``find_spec`` locates it without running it), so a record can be written, and
``benchmarks.render_tables`` can run, while the library is being edited.
"""

from __future__ import annotations

import datetime
import fcntl
import importlib.util
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


# --------------------------------------------------------------------------- machine record


def _git(root: Path, *cmd: str) -> str:
    try:
        return subprocess.run(["git", *cmd], cwd=root, capture_output=True, text=True, timeout=10,
                              check=False).stdout.rstrip()
    except (OSError, subprocess.SubprocessError):
        return ""


def flowforge_source() -> dict:
    """Where flowforge is imported from (relative to the repository when inside it), its git commit and the
    uncommitted files under src/ and benchmarks/.

    ``uncommitted`` lists ``git status --porcelain`` lines (results files left out): a non-empty list means the
    numbers come from code that no commit holds.
    """
    spec = importlib.util.find_spec("flowforge")
    if spec is None or spec.origin is None:
        return {"path": None, "commit": "", "uncommitted": []}
    package = Path(spec.origin).resolve().parent
    root = package.parents[1]  # <root>/src/flowforge
    status = _git(root, "status", "--porcelain", "--", "src", "benchmarks", ":(exclude)benchmarks/results")
    return {"path": portable(str(package), root), "commit": _git(root, "rev-parse", "HEAD"),
            "uncommitted": status.splitlines()}


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
    """The command that ran this benchmark, with ``OMP_NUM_THREADS`` when set (it changes every timing): ``python
    -m benchmarks.NAME ...`` when it ran as a module, paths inside the repository relative to it."""
    main_spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if argv is None:
        argv = sys.argv if main_spec is None else ["-m", main_spec.name, *sys.argv[1:]]
    threads = os.environ.get("OMP_NUM_THREADS")
    words = [".venv/bin/python", *(portable(a) for a in argv)]
    return " ".join(([f"OMP_NUM_THREADS={threads}"] if threads else []) + [shlex.quote(w) for w in words])


# --------------------------------------------------------------------------- timing


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def seconds_of(fn: Callable[[], object], repeats: int, warmup: int = 1) -> list[float]:
    """Wall-clock seconds of ``repeats`` calls of ``fn`` after ``warmup`` untimed ones (``time.perf_counter``)."""
    for _ in range(warmup):
        fn()
    took = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        took.append(time.perf_counter() - t0)
    return took


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


# --------------------------------------------------------------------------- results files


def portable(text: str, root: Path = ROOT) -> str:
    """``text`` with every absolute path inside ``root`` (the repository) written relative to it (the repository
    itself as ``.``), a path in the temporary directory as ``$TMPDIR/...`` and one in the home directory as
    ``~/...``: a results file must not name the directories of the machine it ran on."""
    text = re.sub(re.escape(str(root.resolve())) + r"(?=/|$|[\s'\"])/?",
                  lambda m: "" if m.group(0).endswith("/") else ".", text)
    text = re.sub(r"(?<![\w.~$])" + re.escape(tempfile.gettempdir()) + r"(?=/)", "$TMPDIR", text)
    home = os.path.expanduser("~")
    return text if home in ("", "/") else re.sub(r"(?<![\w.~$])" + re.escape(home) + r"(?=/)", "~", text)


def _portable_record(value, root: Path = ROOT):
    """:func:`portable` applied to every string (and ``Path``) of a JSON-like record."""
    if isinstance(value, dict):
        return {k: _portable_record(v, root) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_portable_record(v, root) for v in value]
    if isinstance(value, (str, Path)):
        return portable(str(value), root)
    return value


def atomic_write_json(path: Path, record: dict) -> None:
    """``record`` as indented JSON at ``path``, whole or not at all, even when the process is killed mid-write."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record, indent=1, default=float) + "\n")
    os.replace(tmp, path)


def write_results(name: str, record: dict, path: str | Path | None = None) -> Path:
    """Write ``record`` to ``benchmarks/results/<name>.json`` (or ``path``) under a block of date, command,
    machine and flowforge source; a key of ``record`` with one of those names wins. Paths inside the repository
    are written relative to it (:func:`portable`). Returns the path."""
    out = Path(path) if path is not None else RESULTS / f"{name}.json"
    head = {"benchmark": name, "date": now(),
            "command": command_line(), "machine": machine(), "flowforge_source": flowforge_source()}
    atomic_write_json(out, _portable_record({**head, **record}))
    return out


def training_seconds(run_dir: Path) -> float:
    """A run's training's own seconds (the engine's clock at its last log line: setup and encoding not counted),
    also for a run trained by an earlier call."""
    from flowforge.runs import read_metrics

    return max(r["seconds"] for r in read_metrics(run_dir) if "kind" not in r and "seconds" in r)


def read_results(name: str) -> dict:
    """``benchmarks/results/<name>.json`` as written by ``write_results``."""
    return json.loads((RESULTS / f"{name}.json").read_text())


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (files only, no display), imported when a figure is drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path, dpi: int = 110) -> None:
    """Lay ``fig`` out and write it to ``path`` (its folder made if missing)."""
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)


def figure_path(figure: str | None, out: str | Path | None, name: str) -> str:
    """A benchmark's ``--figure``: as given, else ``<name>`` beside the results file (``out``, default
    ``benchmarks/results/``); '' means no figure. Benchmarks never write into ``docs/``: ``make docs-figures``
    (``tools/publish_figures.py``) copies the figures the documentation shows."""
    if figure is not None:
        return figure
    return str((Path(out).parent if out else RESULTS) / name)


# --------------------------------------------------------------------------- resumable keyed rows


def _field(row: dict, dotted: str):
    """``row["a"]["b"]`` for ``"a.b"``; None where a level is missing."""
    for part in dotted.split("."):
        if not isinstance(row, dict):
            return None
        row = row.get(part)
    return row


class KeyedRows:
    """The rows of a results file, kept across calls: a call computes only the rows the file does not hold.

    ``protocol`` holds what every kept row must share with this call (the data set, the sample count, the
    seed): an earlier file with another protocol, a file cut short, or ``fresh=True`` (a script's ``--rescore``)
    keeps nothing. A row is then found by its key, a dict of (dotted) field names and values, such as
    ``{"model": "2-RF", "weights_sha256": sha, "nfe": 4}``; ``fill(file, row)`` may complete rows written
    before a field existed (from the file's top level).

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "rows.json"
    >>> rows = KeyedRows(path, {"n": 10})
    >>> calls = []
    >>> def score(nfe):
    ...     calls.append(nfe)
    ...     return {"nfe": nfe, "value": nfe / 10}
    >>> [rows.get_or_compute({"nfe": k}, lambda k=k: score(k))["value"] for k in (1, 2)]
    [0.1, 0.2]
    >>> atomic_write_json(path, {"n": 10, "rows": rows.rows})
    >>> again = KeyedRows(path, {"n": 10})
    >>> [again.get_or_compute({"nfe": k}, lambda k=k: score(k))["value"] for k in (1, 2, 4)], calls
    ([0.1, 0.2, 0.4], [1, 2, 4])
    """

    def __init__(self, path: Path, protocol: dict, *, fresh: bool = False,
                 fill: Callable[[dict, dict], dict] | None = None):
        self.path, self.protocol = Path(path), dict(protocol)
        self.file = {} if fresh else self._read()
        if any(self.file.get(k) != v for k, v in self.protocol.items()):
            self.file = {}  # another protocol, or a record from before one of its fields was kept
        self.previous = [fill(self.file, r) if fill else r for r in self.file.get("rows", [])]
        self.rows: list[dict] = []

    def _read(self) -> dict:
        try:
            return json.loads(self.path.read_text()) if self.path.is_file() else {}
        except json.JSONDecodeError:
            return {}  # a results file cut short: compute afresh

    def find(self, key: dict) -> dict | None:
        """The earlier row whose fields equal ``key``'s values, or None."""
        return next((r for r in self.previous if all(_field(r, k) == v for k, v in key.items())), None)

    def find_all(self, key: dict) -> list[dict]:
        """Every earlier row whose fields equal ``key``'s values."""
        return [r for r in self.previous if all(_field(r, k) == v for k, v in key.items())]

    def get_or_compute(self, key: dict, compute: Callable[[], dict]) -> dict:
        """The earlier row of ``key`` if there is one, else ``compute()``; either way appended to :attr:`rows`."""
        row = self.find(key)
        self.rows.append(compute() if row is None else row)
        return self.rows[-1]

    def pending(self, keep: Iterable[dict]) -> list[dict]:
        """:attr:`rows` so far and the earlier rows matching any of ``keep`` (those a later part of this call will
        reach): what a partial write holds, so that a kill mid-call loses no row the file had."""
        keep = list(keep)
        return self.rows + [r for r in self.previous if any(all(_field(r, k) == v for k, v in key.items())
                                                            for key in keep)]


class SecondsLedger:
    """Wall-clock seconds of named expensive steps (trainings), in a JSON file beside what they made, so that a
    later call which only scores them (or one resumed after a crash) still reports what they cost. Several
    calls may record at once (say two ``--train-only`` calls sharing the cores): each write is under a lock."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def read(self) -> dict[str, float]:
        return json.loads(self.path.read_text()) if self.path.is_file() else {}

    def record(self, name: str, seconds: float) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            atomic_write_json(self.path, {**self.read(), name: seconds})

    def timed(self, name: str, fn: Callable[[], object]) -> None:
        """Call ``fn`` and record its seconds under ``name``."""
        t0 = time.perf_counter()
        fn()
        self.record(name, time.perf_counter() - t0)
