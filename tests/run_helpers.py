"""The CLI as the tests of run directories, the CLI and resumed training call it (their trained run is
conftest.py's ``trained`` / ``run_copy``)."""

import os
import subprocess
import sys

CLI = [sys.executable, "-m", "flowforge.cli"]


def cli(*args, cwd=None):
    """``flowforge ARGS`` in a subprocess on one thread; the finished process."""
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def assert_clean_error(proc, *words):
    """Exit code 2, one error line naming the problem, no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    for word in words:
        assert word in proc.stderr, (word, proc.stderr)
