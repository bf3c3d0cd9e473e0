"""One writer per run directory: an exclusive lock held for a training run's lifetime.

``fcntl.flock`` locks belong to the open file, so the operating system releases
the lock when its process dies, however it dies: a stale lock of a killed run
never blocks the next one, and nothing has to guess whether a PID is alive.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from ..errors import RunError


class RunLock:
    """Exclusive lock on ``run_dir/.lock``; a second process gets a :class:`RunError` naming the holder.

    Use as a context manager, or :meth:`acquire` / :meth:`release`.
    """

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / ".lock"
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise RunError(f"{self.path.parent} is in use by process {holder} (a training run writes there); wait "
                           f"for it to finish, stop it, or choose another run.name / run.dir") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
