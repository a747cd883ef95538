"""The IDX file format (MNIST, Fashion-MNIST), read with numpy alone.

Layout: two zero bytes, a type code, the number of dimensions, then one big-endian uint32 per
dimension, then the values in C order, big-endian. Files may be gzipped.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from ganfriends.errors import DatasetError

_GZIP_MAGIC = b"\x1f\x8b"
# IDX type code -> big-endian numpy dtype.
IDX_DTYPES: dict[int, str] = {
    0x08: ">u1",
    0x09: ">i1",
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}


def read_bytes_maybe_gzip(path: Path) -> bytes:
    """The file's bytes, decompressed when it is gzipped (detected by content, not by name)."""
    try:
        raw = path.read_bytes()
        return gzip.decompress(raw) if raw[:2] == _GZIP_MAGIC else raw
    except (OSError, EOFError, zlib.error) as exc:
        # gzip.BadGzipFile is an OSError; a truncated .gz raises EOFError.
        raise DatasetError(f"cannot read {path}: {exc}; delete it and get it again") from None


def parse_idx(data: bytes, where: str = "IDX data") -> np.ndarray:
    """Decode IDX bytes to a native-endian, writable array; DatasetError naming ``where`` if bad."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in IDX_DTYPES:
        raise DatasetError(f"{where} is not an IDX file (bad magic {data[:4].hex()!r})")
    ndim = data[3]
    header_len = 4 + 4 * ndim  # bytes
    if ndim == 0 or len(data) < header_len:
        raise DatasetError(f"{where} has a malformed IDX header ({ndim} dimensions)")
    dims = struct.unpack(f">{ndim}I", data[4:header_len])
    dtype = np.dtype(IDX_DTYPES[data[2]])
    expected = math.prod(dims) * dtype.itemsize  # bytes
    actual = len(data) - header_len
    if actual != expected:
        raise DatasetError(
            f"{where} is truncated or corrupt: shape {dims} needs {expected} bytes of data, "
            f"found {actual}; delete it and get it again"
        )
    arr = np.frombuffer(data, dtype=dtype, offset=header_len).reshape(dims)
    # astype copies: the result is writable (torch.from_numpy warns otherwise) and native-endian.
    return arr.astype(dtype.newbyteorder("="))


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file, gzipped (``.gz``) or raw, as a numpy array of its stored shape."""
    p = Path(path)
    return parse_idx(read_bytes_maybe_gzip(p), str(p))
