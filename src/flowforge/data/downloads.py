"""Checksummed downloads into a cache folder: temp file, SHA-256 check, atomic rename."""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from flowforge.data.errors import DataError

CACHE_ENV = "FLOWFORGE_CACHE"
CHUNK = 1 << 20
TIMEOUT_S = 60


@dataclass(frozen=True)
class Remote:
    """A file at its canonical URL, with the SHA-256 of its exact bytes."""

    url: str
    sha256: str

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


def cache_root(cache_dir: str | None) -> Path:
    """``cache_dir``, else ``$FLOWFORGE_CACHE``, else ``~/.cache/flowforge``."""
    root = cache_dir or os.environ.get(CACHE_ENV) or "~/.cache/flowforge"
    return Path(root).expanduser()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _stream_to(url: str, out) -> str:
    """Copy ``url`` into the open binary file ``out``; return the SHA-256 of what was written."""
    digest = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
        while block := response.read(CHUNK):
            digest.update(block)
            out.write(block)
    return digest.hexdigest()


def download(remote: Remote, dest: Path) -> Path:
    """Fetch ``remote`` to ``dest``; the file appears there only once its SHA-256 matches.

    The bytes go to a temporary file beside ``dest``, which is renamed into place
    (atomically) after the check and deleted on any failure, so an interrupted
    or corrupted download never leaves a file that looks complete.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                actual = _stream_to(remote.url, out)
            except (urllib.error.URLError, OSError) as err:
                raise DataError(
                    f"cannot download {remote.url} ({err}); check the network, or download it by hand to {dest}"
                ) from None
        if actual != remote.sha256:
            raise DataError(
                f"checksum mismatch for {remote.url}: expected sha256 {remote.sha256}, got {actual}; "
                f"the download is corrupt or the file changed upstream: try again, or fetch it by hand to {dest}"
            )
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest
