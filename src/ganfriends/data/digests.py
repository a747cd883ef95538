"""Content digests of image files: the sha256 of each file's bytes, cached on disk by file stamp.

A folder or CelebA fingerprint covers every byte of every image, so a damaged copy with the right
names and sizes no longer passes for the run's data. Hashing CelebA's 1.4 GB is the slow part of
opening it (see ``benchmarks/fingerprint.py``), so the per-file digests are kept in
``<data dir>/cache/file-digests/`` and reused while a file's stamp (size and modification time; for
a zip member, its CRC and the zip's size and modification time) is unchanged: the second open of
the same copy hashes nothing.

The cache only saves time: a missing, damaged or unwritable cache means hashing again, never an
error. It guards against accidents (a truncated download, a flipped bit), not against a student
who edits it on purpose; such a student could as well edit the code.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import logging
import os
import sys
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

from ganfriends.data.paths import resolve_data_dir
from ganfriends.errors import DatasetError

logger = logging.getLogger(__name__)

CACHE_FORMAT = "ganfriends-file-digests-v1"
# Below this many files to hash, hashing takes well under a second: no progress line.
PROGRESS_MIN_FILES = 2000
_CHUNK_BYTES = 1 << 20  # read size: CelebA files are ~7 KB, so one read each
_BATCH_FILES = 256  # files per thread task: one future per file would cost more than the hash
# Reading and sha256 release the GIL, so threads overlap I/O and hashing; more than 8 only
# contend for the disk.
HASH_THREADS = max(1, min(8, os.cpu_count() or 1))
# What fails when a file cannot be read: the OS, or zipfile on a damaged member (bad CRC,
# truncated data, an unsupported compression method or encryption).
_READ_ERRORS = (
    OSError,
    EOFError,
    zipfile.BadZipFile,
    zlib.error,
    RuntimeError,
    NotImplementedError,
)


@dataclass(frozen=True)
class FileStamp:
    """What must be unchanged for a cached digest to be reused: the size and a version string."""

    size: int
    version: str  # mtime_ns of a file; CRC, zip size and zip mtime_ns of a zip member


def default_cache_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """``<data dir>/cache/file-digests`` (the default data dir when ``data_dir`` is None)."""
    return resolve_data_dir(data_dir) / "cache" / "file-digests"


def sha256_stream(stream: IO[bytes]) -> bytes:
    """The sha256 of everything left in ``stream``, read in chunks (never a whole file at once)."""
    h = hashlib.sha256()
    while chunk := stream.read(_CHUNK_BYTES):
        h.update(chunk)
    return h.digest()


def _cache_path(cache_dir: Path, key: str) -> Path:
    return cache_dir / (hashlib.sha256(key.encode()).hexdigest()[:24] + ".tsv")


def load_cache(cache_dir: Path, key: str) -> dict[str, tuple[FileStamp, str]]:
    """{name: (stamp, hex digest)} cached for the container ``key``; empty when none is usable."""
    path = _cache_path(cache_dir, key)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}
    lines = text.split("\n")
    # The header repeats the key: a hash-prefix collision between two containers is a miss.
    if lines[0] != f"{CACHE_FORMAT}\t{key}":
        return {}
    entries: dict[str, tuple[FileStamp, str]] = {}
    for line in lines[1:]:
        fields = line.split("\t")
        if len(fields) != 4 or len(fields[3]) != 64 or not fields[1].isdigit():
            continue  # a damaged line only means that file is hashed again
        name, size, version, digest = fields
        entries[name] = (FileStamp(int(size), version), digest)
    return entries


def save_cache(cache_dir: Path, key: str, entries: dict[str, tuple[FileStamp, str]]) -> None:
    """Write the cache for ``key`` atomically (temp file + rename); failures are only logged."""
    path = _cache_path(cache_dir, key)
    lines = [f"{CACHE_FORMAT}\t{key}"]
    for name, (stamp, digest) in entries.items():
        # A tab or newline in a name would break the line format: such files are just not cached.
        if "\t" in name or "\n" in name or "\t" in stamp.version or "\n" in stamp.version:
            continue
        lines.append(f"{name}\t{stamp.size}\t{stamp.version}\t{digest}")
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        logger.info("cannot write the file digest cache %s: %s", path, exc)
        with contextlib.suppress(OSError):  # e.g. the cache's parent is a file: no tmp either
            tmp.unlink(missing_ok=True)


def _batches(indices: Sequence[int]) -> Iterator[Sequence[int]]:
    for start in range(0, len(indices), _BATCH_FILES):
        yield indices[start : start + _BATCH_FILES]


def _progress(total: int, label: str) -> AbstractContextManager[Progress | None]:
    """A transient progress bar on a terminal; one line on other stderr; none for small jobs."""
    if total < PROGRESS_MIN_FILES:
        return nullcontext()
    if sys.stderr.isatty():
        columns = (BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        return Progress(*columns, console=Console(stderr=True), transient=True)
    print(f"hashing {total:,} files of {label} (once: cached afterwards) ...", file=sys.stderr)
    return nullcontext()


def hash_files(
    opener: Callable[[int], IO[bytes]],
    location: Callable[[int], str],
    indices: Sequence[int],
    *,
    label: str,
    threads: int | None = None,
) -> dict[int, str]:
    """{index: hex sha256} of the files at ``indices``, read through ``opener``.

    A file that cannot be read is a DatasetError naming it: the copy itself is damaged, and a
    fingerprint that skipped it would call two different copies the same. ``threads`` None means
    :data:`HASH_THREADS`.
    """
    threads = HASH_THREADS if threads is None else threads

    def hash_batch(batch: Sequence[int]) -> list[tuple[int, str]]:
        out = []
        for i in batch:
            try:
                with opener(i) as stream:
                    out.append((i, sha256_stream(stream).hex()))
            except _READ_ERRORS as exc:
                raise DatasetError(
                    f"cannot read {location(i)} ({exc}): this copy of the dataset is damaged; "
                    "replace the file (or download the dataset again)"
                ) from None
        return out

    digests: dict[int, str] = {}
    pool = concurrent.futures.ThreadPoolExecutor(max(1, threads))
    with _progress(len(indices), label) as bar, pool:
        task = bar.add_task(f"hashing {label}", total=len(indices)) if bar is not None else None
        for part in pool.map(hash_batch, _batches(indices)):
            digests.update(part)
            if bar is not None and task is not None:
                bar.advance(task, len(part))
    return digests


def cached_digests(
    key: str,
    names: Sequence[str],
    stamps: Sequence[FileStamp],
    opener: Callable[[int], IO[bytes]],
    location: Callable[[int], str],
    *,
    label: str,
    cache_dir: Path | None,
    threads: int | None = None,
) -> list[str]:
    """The hex sha256 of every file, in ``names`` order: from the cache where the stamp matches,
    hashed (and the cache updated) otherwise. ``cache_dir`` None hashes everything, caches nothing.
    """
    cache = load_cache(cache_dir, key) if cache_dir is not None else {}
    digests: list[str] = []
    todo: list[int] = []
    for i, (name, stamp) in enumerate(zip(names, stamps, strict=True)):
        hit = cache.get(name)
        if hit is not None and hit[0] == stamp:
            digests.append(hit[1])
        else:
            digests.append("")  # filled in below
            todo.append(i)
    if todo:
        for i, digest in hash_files(opener, location, todo, label=label, threads=threads).items():
            digests[i] = digest
            cache[names[i]] = (stamps[i], digest)
        if cache_dir is not None:
            save_cache(cache_dir, key, cache)
    return digests
