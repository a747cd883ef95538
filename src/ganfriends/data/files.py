"""File-backed datasets: a sorted list of image files in a folder or a zip, decoded on demand.

CelebA and the generic folder dataset are both a :class:`FileDataset` over a :class:`FileSource`;
they differ only in how they find their files. The fingerprint covers every file's bytes
(:mod:`ganfriends.data.digests`), and is the same for a folder and a zip of the same files.
"""

from __future__ import annotations

import abc
import io
import itertools
import logging
import os
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from ganfriends.data.base import DatasetFingerprint, ImageDataset, make_digest
from ganfriends.data.digests import FileStamp, cached_digests, default_cache_dir
from ganfriends.data.images import IMAGE_EXTENSIONS, decode_image
from ganfriends.errors import DatasetError

logger = logging.getLogger(__name__)

# Directories macOS adds to zips and folders; their "._x.jpg" entries are metadata, not images.
_JUNK_DIRS = frozenset({"__MACOSX"})
# The first chunk of a file dataset's digest: says what each line holds. Version 1 (before this
# marker) hashed only "name\tsize" lines, so a copy with damaged bytes passed for the run's data.
_CONTENT_FORMAT = b"files-v2: name, size, sha256 of the bytes\n"
# What follows the file lines of a labelled dataset: the class names in label order, then each
# image's label. The labels derive from the names today, but hashing them says so in the digest:
# a ganfriends that labelled the same files otherwise can never pass for this one's data.
_LABELS_FORMAT = b"labels-v1: class names NUL-separated, then int64 little-endian labels\n"

# A zip member is decompressed whole at every access (and once more to hash it), so a zip's own
# directory is held to what image files are before anything is read: a 1 MB zip with a 1 GiB
# member of zeros made each access read 1 GiB (2.3 GB of memory). A CelebA image is ~7 KB and a
# 24-megapixel JPEG ~10 MB: 64 MiB per image leaves room for any image a GAN trains on.
MAX_MEMBER_BYTES = 64 << 20
# Deflate gains little on JPEG or PNG, whose data is already compressed: measured, a noisy
# 178x218 JPEG 1.01:1, a one-colour one 3:1. Only a nearly empty image goes beyond 100:1 (a
# one-colour 2048x2048 JPEG: 114:1, but 66 KB), so members above MAX_RATIO_FROM bytes alone are
# held to the ratio: a small member costs nothing to read, whatever its ratio. (The zip datasets
# take JPEGs only; an uncompressed BMP of one colour would be refused: 1,000:1.)
MAX_COMPRESSION_RATIO = 100
MAX_RATIO_FROM = 1 << 20


def _is_image_name(name: str, extensions: Sequence[str]) -> bool:
    suffixes = extensions if isinstance(extensions, tuple) else tuple(extensions)
    return name.lower().endswith(suffixes) and not name.startswith(".")


def list_image_files(
    root: Path, extensions: Sequence[str] = IMAGE_EXTENSIONS, *, recursive: bool = True
) -> list[str]:
    """Image files under ``root``, as sorted relative posix paths.

    Hidden entries (dot files, dot directories) and ``__MACOSX`` are skipped: they are never images.
    """
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        if recursive:
            dirnames[:] = [d for d in dirnames if not d.startswith(".") and d not in _JUNK_DIRS]
        else:
            dirnames.clear()
        rel = Path(dirpath).relative_to(root).as_posix()
        prefix = "" if rel == "." else rel + "/"
        found.extend(prefix + f for f in filenames if _is_image_name(f, extensions))
    found.sort()
    return found


def check_zip_member(info: zipfile.ZipInfo, where: str) -> None:
    """Refuse a member whose declared size or compression ratio no image file has (a zip bomb),
    from the zip's directory alone: nothing of it is read. ``where`` names the zip."""
    size, packed = info.file_size, info.compress_size
    if size > MAX_MEMBER_BYTES:
        raise DatasetError(
            f"{where}:{info.filename} declares {size:,} bytes, more than any image "
            f"({MAX_MEMBER_BYTES >> 20} MiB): this zip is not an image dataset"
        )
    if size > MAX_RATIO_FROM and size > MAX_COMPRESSION_RATIO * packed:
        raise DatasetError(
            f"{where}:{info.filename} expands {packed:,} bytes to {size:,}, more than "
            f"{MAX_COMPRESSION_RATIO}:1, which no image file does: this zip is not an image dataset"
        )


def read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """The bytes of ``info``, checked by :func:`check_zip_member` and read with a bound: at most
    the declared size (one more byte shows a member that lies about it)."""
    check_zip_member(info, str(zf.filename))
    with zf.open(info) as stream:
        data = stream.read(info.file_size + 1)
    if len(data) > info.file_size:
        raise zipfile.BadZipFile(f"{info.filename} holds more than its declared {info.file_size:,}")
    return data


class _BoundedMember(io.RawIOBase):
    """A zip member's stream that fails once it gives more than the member's declared size.

    zipfile itself stops at the declared size today; this bound does not depend on that.
    """

    def __init__(self, stream: IO[bytes], info: zipfile.ZipInfo) -> None:
        self._stream, self._info, self._left = stream, info, info.file_size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._stream.read(min(len(buffer), self._left + 1))
        if len(data) > self._left:
            raise zipfile.BadZipFile(
                f"{self._info.filename} holds more than its declared {self._info.file_size:,}"
            )
        self._left -= len(data)
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._stream.close()
        super().close()


def find_zip_images(
    infos: Sequence[zipfile.ZipInfo], extensions: Sequence[str], where: str = "zip"
) -> tuple[str, list[str], list[int]]:
    """The image directory of a zip: (member prefix, sorted names under it, their sizes).

    The directory holding the most images wins, so ``img_align_celeba/x.jpg`` and Kaggle's
    ``img_align_celeba/img_align_celeba/x.jpg`` both work and stray pictures elsewhere are ignored.
    DatasetError when one of its members is no image file by its size (see
    :func:`check_zip_member`; ``where`` names the zip in the message).
    """
    # Plain string operations: pathlib objects for 200k members would cost seconds.
    by_dir: dict[str, dict[str, zipfile.ZipInfo]] = {}
    wanted_dir: dict[str, bool] = {}
    for info in infos:
        parent, _, base = info.filename.rpartition("/")
        if not base or not _is_image_name(base, extensions):
            continue
        ok = wanted_dir.get(parent)
        if ok is None:
            parts = parent.split("/") if parent else []
            ok = wanted_dir[parent] = not any(p in _JUNK_DIRS or p.startswith(".") for p in parts)
        if ok:
            by_dir.setdefault(parent + "/" if parent else "", {})[base] = info
    if not by_dir:
        return "", [], []
    prefix = max(by_dir, key=lambda p: (len(by_dir[p]), -len(p)))
    chosen = by_dir[prefix]
    names = sorted(chosen)
    for name in names:  # 15 ms for CelebA's 202,599 members
        check_zip_member(chosen[name], where)
    return prefix, names, [chosen[n].file_size for n in names]


class FileSource(abc.ABC):
    """Image files addressed by index; ``names`` are sorted paths relative to the image root."""

    names: list[str]

    @abc.abstractmethod
    def read(self, index: int) -> bytes:
        """The encoded bytes of file ``index``."""

    @abc.abstractmethod
    def open(self, index: int) -> IO[bytes]:
        """File ``index`` opened for streaming its (decompressed) bytes."""

    @abc.abstractmethod
    def sizes(self) -> list[int]:
        """The size in bytes of every file, in ``names`` order."""

    @abc.abstractmethod
    def stamps(self) -> list[FileStamp]:
        """Every file's size and version, in ``names`` order: a cached digest with the same stamp
        is the file's digest."""

    @abc.abstractmethod
    def cache_key(self) -> str:
        """What names this folder or zip in the digest cache (an absolute path, with its kind)."""

    @abc.abstractmethod
    def location(self, index: int | None = None) -> str:
        """Where the files (or file ``index``) are, for messages."""

    @abc.abstractmethod
    def subset(self, indices: Sequence[int]) -> FileSource:
        """A source of only the files at ``indices`` (this one must not be used afterwards)."""

    def close(self) -> None:  # noqa: B027 - optional hook: only zips keep a file open
        """Release open files."""


class DirectorySource(FileSource):
    """Files in a directory tree."""

    def __init__(self, root: Path, names: Sequence[str]) -> None:
        self.root = root
        self.names = list(names)

    def read(self, index: int) -> bytes:
        """The bytes of file ``index``."""
        return (self.root / self.names[index]).read_bytes()

    def open(self, index: int) -> IO[bytes]:
        """The file, opened for reading."""
        return (self.root / self.names[index]).open("rb")

    def sizes(self) -> list[int]:
        """File sizes from ``stat``."""
        return [stamp.size for stamp in self.stamps()]

    def stamps(self) -> list[FileStamp]:
        """Size and modification time (ns) from ``stat``."""
        try:
            stats = [(self.root / n).stat() for n in self.names]
        except OSError as exc:
            raise DatasetError(f"cannot read the image files in {self.root}: {exc}") from None
        return [FileStamp(st.st_size, str(st.st_mtime_ns)) for st in stats]

    def cache_key(self) -> str:
        """``dir`` and the resolved root."""
        return f"dir\t{self.root.resolve()}"

    def location(self, index: int | None = None) -> str:
        """The root, or the file's path."""
        return str(self.root if index is None else self.root / self.names[index])

    def subset(self, indices: Sequence[int]) -> DirectorySource:
        """The files at ``indices``."""
        return DirectorySource(self.root, [self.names[i] for i in indices])


class ZipSource(FileSource):
    """Members of a zip file under one directory prefix, read without extracting.

    The zip is opened lazily in each process: a handle inherited by a forked DataLoader worker
    shares its file offset with the parent, so reads from both would interleave and corrupt data.
    """

    def __init__(
        self,
        zip_path: Path,
        prefix: str,
        names: Sequence[str],
        sizes: Sequence[int],
        handle: zipfile.ZipFile | None = None,
    ) -> None:
        self.zip_path = zip_path
        self.prefix = prefix
        self.names = list(names)
        self._sizes = list(sizes)
        # Reuse the handle the caller opened to list the members: parsing a big central directory
        # again costs a noticeable fraction of a second.
        self._zip = handle
        self._pid = os.getpid() if handle is not None else None

    def handle(self) -> zipfile.ZipFile:
        """This process's open zip file."""
        if self._zip is None or self._pid != os.getpid():
            self._zip = zipfile.ZipFile(self.zip_path)
            self._pid = os.getpid()
        return self._zip

    def read(self, index: int) -> bytes:
        """The decompressed bytes of member ``index`` (CRC-checked by zipfile), at most its
        declared size (see :func:`read_member`)."""
        zf = self.handle()
        return read_member(zf, zf.getinfo(self.prefix + self.names[index]))

    def open(self, index: int) -> IO[bytes]:
        """The member, decompressed as it is read; zipfile checks its CRC at the end, and the
        stream fails past the declared size."""
        zf = self.handle()
        info = zf.getinfo(self.prefix + self.names[index])
        check_zip_member(info, str(self.zip_path))
        return io.BufferedReader(_BoundedMember(zf.open(info), info))

    def sizes(self) -> list[int]:
        """Uncompressed member sizes, which equal the extracted files' sizes."""
        return list(self._sizes)

    def stamps(self) -> list[FileStamp]:
        """Member size and CRC, plus the zip's size and modification time: a rewritten zip is
        hashed again even where its directory claims the same CRCs."""
        try:
            st = self.zip_path.stat()
        except OSError as exc:
            raise DatasetError(f"cannot read {self.zip_path}: {exc}") from None
        zf = self.handle()
        return [
            FileStamp(size, f"{zf.getinfo(self.prefix + n).CRC:08x}:{st.st_size}:{st.st_mtime_ns}")
            for n, size in zip(self.names, self._sizes, strict=True)
        ]

    def cache_key(self) -> str:
        """``zip``, the resolved zip path and the member prefix."""
        return f"zip\t{self.zip_path.resolve()}\t{self.prefix}"

    def location(self, index: int | None = None) -> str:
        """The zip, or ``zip:member``."""
        if index is None:
            return str(self.zip_path)
        return f"{self.zip_path}:{self.prefix}{self.names[index]}"

    def subset(self, indices: Sequence[int]) -> ZipSource:
        """The members at ``indices``; the open handle moves to the new source."""
        handle = self._zip if self._pid == os.getpid() else None
        self._zip, self._pid = None, None
        names = [self.names[i] for i in indices]
        sizes = [self._sizes[i] for i in indices]
        return ZipSource(self.zip_path, self.prefix, names, sizes, handle=handle)

    def close(self) -> None:
        """Close this process's handle."""
        if self._zip is not None and self._pid == os.getpid():
            self._zip.close()
        self._zip = None
        self._pid = None

    def __getstate__(self) -> dict[str, object]:
        # Workers started with spawn/forkserver get the member list, never an open file.
        state = self.__dict__.copy()
        state["_zip"] = None
        state["_pid"] = None
        return state


def open_zip(zip_path: Path) -> zipfile.ZipFile:
    """Open ``zip_path``, turning an unreadable zip into one actionable DatasetError."""
    try:
        return zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise DatasetError(
            f"cannot read {zip_path} as a zip file ({exc}): it may be incomplete, download it again"
        ) from None


@dataclass(frozen=True)
class ClassLabels:
    """The classes of a file dataset's images: ``classes[of_images[i]]`` is image ``i``'s."""

    classes: tuple[str, ...]
    of_images: np.ndarray  # int64, one per image, in the source's name order

    def digest_chunks(self) -> Iterator[bytes]:
        """What the fingerprint hashes of them, after the file lines."""
        yield _LABELS_FORMAT
        yield "\0".join(self.classes).encode() + b"\n"
        yield self.of_images.astype("<i8").tobytes()


class FileDataset(ImageDataset):
    """Images decoded on demand from a :class:`FileSource`; unreadable files come back as None.

    ``digest_cache`` is where the per-file digests of :meth:`fingerprint` are cached (None: the
    default data dir's ``cache/file-digests``). ``labels``: the images' classes, if they have any
    (a folder of class sub-folders, :func:`ganfriends.data.folder.open_folder`).
    """

    def __init__(
        self,
        name: str,
        source: FileSource,
        image_size: int,
        channels: int = 3,
        *,
        digest_cache: Path | None = None,
        labels: ClassLabels | None = None,
    ) -> None:
        self.name = name
        self.source = source
        self.image_size = image_size
        self.channels = channels
        self.digest_cache = digest_cache
        if labels is not None and len(labels.of_images) != len(source.names):
            raise ValueError(f"{len(labels.of_images)} labels for {len(source.names)} images")
        self.class_labels = labels
        self._fingerprint: DatasetFingerprint | None = None
        self._reported: set[int] = set()

    def __len__(self) -> int:
        return len(self.source.names)

    def __getitem__(self, index: int) -> torch.Tensor | None:
        i = self.check_index(index)
        try:
            return decode_image(self.source.read(i), self.image_size, self.channels)
        # PIL, zlib and zipfile raise a zoo of exception types on damaged files (OSError,
        # SyntaxError, ValueError, struct.error, BadZipFile, DecompressionBombError, ...): one bad
        # image must never end an epoch, so any failure to read or decode makes it "skipped".
        except Exception as exc:
            if i not in self._reported:
                self._reported.add(i)
                logger.warning("skipping unreadable image %s: %s", self.source.location(i), exc)
            return None

    def labels(self) -> np.ndarray | None:
        """Each image's class (int64, in image order), a copy; None without class labels."""
        return None if self.class_labels is None else self.class_labels.of_images.copy()

    def num_classes(self) -> int | None:
        """How many classes the labels draw from, or None without class labels."""
        return None if self.class_labels is None else len(self.class_labels.classes)

    def fingerprint(self) -> DatasetFingerprint:
        """Digest of the sorted (relative name, size, sha256 of the bytes) list, then the class
        labels if there are any; equal for a folder and a zip of the same files. The first call
        on a copy hashes every file (CelebA: see ``benchmarks/fingerprint.py``); later ones reuse
        the digest cache.

        DatasetError when a file cannot be read at all (a damaged zip member, an I/O error): such a
        copy is not the data. A file that reads but does not decode is hashed like any other, so
        every machine with the same bytes skips the same images.
        """
        if self._fingerprint is None:
            labels = () if self.class_labels is None else self.class_labels.digest_chunks()
            self._fingerprint = DatasetFingerprint(
                name=self.name,
                size=len(self),
                image_size=self.image_size,
                channels=self.channels,
                digest=self._digest(self._file_lines(), labels),
            )
        return self._fingerprint

    def _file_lines(self) -> Iterator[bytes]:
        """One ``name, size, sha256`` line per file (hashing what the digest cache lacks)."""
        source = self.source
        stamps = source.stamps()
        digests = cached_digests(
            source.cache_key(),
            source.names,
            stamps,
            source.open,
            source.location,
            label=source.location(),
            cache_dir=self.digest_cache or default_cache_dir(),
        )
        for n, st, d in zip(source.names, stamps, digests, strict=True):
            yield f"{n}\t{st.size}\t{d}\n".encode()

    def _digest(self, file_lines: Iterable[bytes], then: Iterable[bytes] = ()) -> str:
        return make_digest(
            self.name,
            self.image_size,
            self.channels,
            itertools.chain([_CONTENT_FORMAT], file_lines, then),
        )

    def legacy_digests(self) -> tuple[str, ...]:
        """The digest of names and sizes only, which runs created before fingerprints covered
        file contents hold, and for labelled images the digest without their labels (runs created
        before folders had labels): tells "a run of an older ganfriends" from "other data"."""
        sizes = self.source.sizes()
        lines = (f"{n}\t{s}\n".encode() for n, s in zip(self.source.names, sizes, strict=True))
        names_only = make_digest(self.name, self.image_size, self.channels, lines)
        if self.class_labels is None:
            return (names_only,)
        return names_only, self._digest(self._file_lines())

    def close(self) -> None:
        """Close the source's open files."""
        self.source.close()

    def __getstate__(self) -> dict[str, object]:
        state = self.__dict__.copy()
        state["_reported"] = set()
        return state
