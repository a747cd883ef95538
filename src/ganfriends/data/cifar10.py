"""CIFAR-10: 32x32 colour images in 10 classes, from the *binary* version, held in memory.

Read from ``cifar-10-binary.tar.gz`` (members read straight out of the archive, nothing extracted)
or from its extracted ``cifar-10-batches-bin`` folder. Never the "python version": its batches are
pickles, and unpickling a downloaded file can run arbitrary code.

Each batch file is a run of 3073-byte records: one label byte, then the red, green and blue planes
of the 32x32 image (1024 bytes each, row by row). The five training batches are read in order.
"""

from __future__ import annotations

import os
import tarfile
import zlib
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import numpy as np

from ganfriends.data.download import check_sha256, fetch_url, sha256_of
from ganfriends.data.memory import DatasetHome, DownloadableDataset
from ganfriends.errors import DatasetError

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
CIFAR10_URL_ENV = "GANFRIENDS_CIFAR10_URL"
CIFAR10_PAGE = "https://www.cs.toronto.edu/~kriz/cifar.html"
CIFAR10_ARCHIVE = "cifar-10-binary.tar.gz"
CIFAR10_FOLDER = "cifar-10-batches-bin"  # inside the archive, and once extracted
# sha256 of the archive. The authors publish only its md5 (c32a1d4ab5d03f1284b67883e8d87530);
# this sha256 of the same 170,052,171 bytes is the one TFDS and other projects pin.
CIFAR10_SHA256 = "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd"
# split -> its batch files, in image order
CIFAR10_SPLITS: dict[str, tuple[str, ...]] = {
    "train": tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
    "test": ("test_batch.bin",),
}
NATIVE_SIZE = 32  # pixels
NUM_CLASSES = 10
RECORD_BYTES = 1 + 3 * NATIVE_SIZE * NATIVE_SIZE  # a label byte, then the R, G and B planes
# Every real batch holds exactly 10,000 records; anything bigger is not CIFAR-10 and would only
# waste memory before failing.
_MAX_BATCH_BYTES = 10_000 * RECORD_BYTES
_TITLE = "CIFAR-10"


class Cifar10Home(DatasetHome):
    """Where CIFAR-10's binary version lives: its archive, or the archive's extracted folder."""

    title = _TITLE
    folder = "cifar10"
    splits = tuple(CIFAR10_SPLITS)

    def source_in(self, directory: Path, split: str | None) -> Path | None:
        """The folder of batch files in ``directory``, else the archive there, else None."""
        # The extracted folder first: it loads without decompressing 170 MB.
        names = [n for s in ([split] if split else CIFAR10_SPLITS) for n in CIFAR10_SPLITS[s]]
        for folder in (directory / CIFAR10_FOLDER, directory):
            if all((folder / n).is_file() for n in names):
                return folder
        archive = directory / CIFAR10_ARCHIVE
        return archive if archive.is_file() else None

    def is_archive(self, path: Path) -> bool:
        """Any file but a batch file: an archive, whatever its name; reading it checks it."""
        return path.suffix != ".bin"

    def missing(self, directory: Path, split: str | None) -> str:
        """Names the archive and its folder."""
        return (
            f"{_TITLE} not found in {directory}: expected {CIFAR10_ARCHIVE} or its "
            f"{CIFAR10_FOLDER} folder (the binary version)"
        )

    def download(
        self,
        dest: str | os.PathLike[str],
        *,
        url: str | None = None,
        sha256: str | None = None,
        progress: bool = True,
    ) -> Path:
        """Download the binary archive to ``dest/cifar-10-binary.tar.gz`` (kept packed); its path.

        The URL is ``url``, else ``$GANFRIENDS_CIFAR10_URL``, else the authors' site. The archive
        is verified against ``sha256`` (default :data:`CIFAR10_SHA256`) before it gets its final
        name. An archive already there is returned as is.
        """
        target = Path(dest).expanduser() / CIFAR10_ARCHIVE
        if target.is_file():
            return target
        source = url or os.environ.get(CIFAR10_URL_ENV) or CIFAR10_URL
        expected = CIFAR10_SHA256 if sha256 is None else sha256

        def verify(path: Path) -> None:
            check_sha256(sha256_of(path), expected, source, CIFAR10_URL_ENV)

        return fetch_url(source, target, verify=verify, progress=progress)

    def manual_steps(self, target: Path) -> str:
        """Where to download the archive by hand, and where to put it."""
        return (
            f"download {CIFAR10_ARCHIVE} (the binary version) from {CIFAR10_PAGE} and put it in "
            f"{target} (no need to extract it)"
        )


CIFAR10_HOME = Cifar10Home()
find_cifar10 = CIFAR10_HOME.find
download_cifar10 = CIFAR10_HOME.download


def _member_name(name: str, archive: Path) -> str:
    """``name`` without ``./`` parts; DatasetError if it is absolute or climbs out with ``..``."""
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts:
        raise DatasetError(
            f"{archive} holds a member with an unsafe path ({name!r}): it is not a genuine "
            f"{_TITLE} archive; delete it and get {CIFAR10_ARCHIVE} again"
        )
    return "/".join(p for p in path.parts if p != ".")


def _read_archive(archive: Path, names: Sequence[str]) -> list[bytes]:
    wanted = {f"{CIFAR10_FOLDER}/{n}": n for n in names}
    found: dict[str, bytes] = {}
    pickled = False
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                name = _member_name(member.name, archive)
                pickled = pickled or name.startswith("cifar-10-batches-py/")
                if name not in wanted or not member.isfile():
                    continue
                if member.size > _MAX_BATCH_BYTES:
                    raise DatasetError(f"{archive}: {name} is too big for a {_TITLE} batch")
                data = tar.extractfile(member)
                if data is not None:
                    found[wanted[name]] = data.read()
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"cannot read {archive}: {exc}; delete it and get it again") from None
    missing = [n for n in names if n not in found]
    if pickled and missing:
        raise DatasetError(
            f"{archive} is the python (pickle) version of {_TITLE}, which ganfriends never "
            f"unpickles: get {CIFAR10_ARCHIVE} (the binary version) from {CIFAR10_PAGE}"
        )
    if missing:
        raise DatasetError(
            f"{archive} lacks {CIFAR10_FOLDER}/{missing[0]}: it is not {CIFAR10_ARCHIVE}; "
            f"get that from {CIFAR10_PAGE}"
        )
    return [found[n] for n in names]


def _read_folder(folder: Path, names: Sequence[str]) -> list[bytes]:
    out = []
    for name in names:
        path = folder / name
        try:
            if path.stat().st_size > _MAX_BATCH_BYTES:
                raise DatasetError(f"{path} is too big for a {_TITLE} batch")
            out.append(path.read_bytes())
        except OSError as exc:
            raise DatasetError(f"cannot read {path}: {exc}; get {CIFAR10_ARCHIVE} again") from None
    return out


def _parse_batch(data: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    """(labels (N,), pixels (N, 3, 32, 32)) of one batch file's bytes, as read-only views."""
    if not data or len(data) % RECORD_BYTES:
        raise DatasetError(
            f"{where} is truncated or corrupt: {len(data)} bytes is not a whole number of "
            f"{RECORD_BYTES}-byte records; delete it and get {CIFAR10_ARCHIVE} again"
        )
    records = np.frombuffer(data, dtype=np.uint8).reshape(-1, RECORD_BYTES)
    return records[:, 0], records[:, 1:].reshape(-1, 3, NATIVE_SIZE, NATIVE_SIZE)


class CIFAR10(DownloadableDataset):
    """One split of CIFAR-10 as ``(3, size, size)`` RGB images, with class labels (0-9).

    ``root`` is the archive or the folder of batch files. Images are 32x32; another
    ``image_size`` resizes them (bilinear, antialiased).
    """

    name = "cifar10"
    channels = 3
    home = CIFAR10_HOME
    num_labels = NUM_CLASSES

    def read_split(self, root: Path, split: str) -> tuple[np.ndarray, np.ndarray, str]:
        """The split's batches, in order: pixels ``(N, 3, 32, 32)`` and labels."""
        names = CIFAR10_SPLITS[split]
        batches = _read_folder(root, names) if root.is_dir() else _read_archive(root, names)
        parsed = [_parse_batch(b, f"{root}: {n}") for b, n in zip(batches, names, strict=True)]
        del batches  # the raw bytes: up to 150 MB that the copies below replace
        # concatenate copies into one writable array (torch.from_numpy warns on read-only ones).
        raw = np.concatenate([images for _, images in parsed])
        labels = np.concatenate([classes for classes, _ in parsed])
        return raw, labels, str(root)


open_cifar10 = CIFAR10.open
