"""The IDX format of MNIST-style files (http://yann.lecun.com/exdb/mnist/), gzipped or not.

Layout: two zero bytes, a type byte, the number of dimensions ``ndim``, then
``ndim`` big-endian uint32 sizes, then the values in C order.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flowforge.data.downloads import Remote
from flowforge.data.errors import DataError

IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class IdxFile:
    """One IDX file: where to download it (SHA-256 of the ``.gz``) and the SHA-256 of its decompressed bytes.

    Here, below both the loader (:mod:`flowforge.data.mnist`) and the offline copies (:mod:`flowforge.data.offline`)
    that read it, so that neither imports the other.
    """

    remote: Remote
    raw_sha256: str


def read_idx_bytes(path: Path) -> bytes:
    """The IDX bytes of ``path``, decompressed if it is gzipped."""
    try:
        raw = path.read_bytes()
        return gzip.decompress(raw) if raw[:2] == GZIP_MAGIC else raw
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"{path}: truncated or corrupt gzip file ({err}); delete it and download it again") from None


def parse_idx(data: bytes, source: str) -> np.ndarray:
    """The array stored in IDX bytes, in native byte order; ``source`` names the file in errors."""
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] not in IDX_TYPES or data[3] == 0:
        raise DataError(f"{source}: not an IDX file (bad magic number {data[:4].hex() or 'none'}); replace the file")
    ndim, dtype = data[3], IDX_TYPES[data[2]]
    start = 4 + 4 * ndim
    if len(data) < start:
        raise DataError(f"{source}: truncated IDX header; delete the file and download it again")
    dims = struct.unpack(f">{ndim}I", data[4:start])
    count = int(np.prod(dims))
    expected, found = count * dtype.itemsize, len(data) - start
    if found != expected:
        problem = "truncated" if found < expected else "has trailing bytes"
        raise DataError(
            f"{source}: {problem}: dims {dims} need {expected} bytes of data, found {found}; "
            f"delete the file and download it again"
        )
    values = np.frombuffer(data, dtype=dtype, count=count, offset=start).reshape(dims)
    return values.astype(dtype.newbyteorder("="))


def read_idx(path: Path) -> np.ndarray:
    """The array in the IDX file ``path`` (``.gz`` or plain)."""
    return parse_idx(read_idx_bytes(path), str(path))
