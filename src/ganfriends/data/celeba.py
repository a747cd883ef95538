"""CelebA (aligned and cropped faces), read from an extracted folder or straight from the zip.

Index order is the sorted file names (000001.jpg, ...), identical whichever packaging a machine
has: the official ``img_align_celeba.zip``, Kaggle's ``archive.zip`` (nested
``img_align_celeba/img_align_celeba/``), or either one extracted.
"""

from __future__ import annotations

import functools
import os
import re
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from ganfriends.data.digests import default_cache_dir
from ganfriends.data.files import (
    DirectorySource,
    FileDataset,
    FileSource,
    ZipSource,
    find_zip_images,
    list_image_files,
    open_zip,
    read_member,
)
from ganfriends.data.paths import resolve_data_dir
from ganfriends.errors import DatasetError

CELEBA_IMAGE_DIR = "img_align_celeba"
# Zips looked for in a directory, in order: the official one, then Kaggle's download names.
CELEBA_ZIP_NAMES = ("img_align_celeba.zip", "archive.zip", "celeba-dataset.zip")
PARTITION_FILES = ("list_eval_partition.txt", "list_eval_partition.csv")
# "train" is every image, as the seed project trained (not only partition 0): that keeps the
# default independent of whether a machine's copy happens to include the partition file.
CELEBA_SPLITS = ("train", "all", "valid", "test")
_PARTITION_CODE = {"valid": 1, "test": 2}
_EXTENSIONS = (".jpg", ".jpeg")
_NOT_FOUND_HELP = (
    "run `ganfriends download-celeba` or download img_align_celeba.zip manually "
    "(see ganfriends download-celeba --help)"
)


def default_celeba_dirs(data_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """Where CelebA is looked for without a path: ``<data_dir>/celeba``, ``./data/celeba``."""
    return [resolve_data_dir(data_dir) / "celeba", Path.cwd() / "data" / "celeba"]


def open_celeba(
    path: str | os.PathLike[str] | None = None,
    *,
    image_size: int = 64,
    split: str = "train",
    data_dir: str | os.PathLike[str] | None = None,
) -> FileDataset:
    """CelebA as a dataset of ``(3, image_size, image_size)`` images.

    ``path`` is the image folder, a folder containing it (or a zip of it), or the zip itself.
    """
    if split not in CELEBA_SPLITS:
        raise DatasetError(
            f"unknown CelebA split {split!r}: choose one of {', '.join(CELEBA_SPLITS)}"
        )
    candidates = [Path(path).expanduser()] if path is not None else default_celeba_dirs(data_dir)
    for candidate in candidates:
        found = _locate(candidate)
        if found is not None:
            source, load_partitions = found
            break
    else:
        where = " or ".join(str(c) for c in candidates)
        raise DatasetError(f"CelebA not found at {where}: {_NOT_FOUND_HELP}")
    if split in _PARTITION_CODE:
        source = _select_split(source, load_partitions(), split)
    # The digest cache lives in the data dir that was asked for, like the data itself.
    return FileDataset(
        "celeba",
        source,
        image_size=image_size,
        channels=3,
        digest_cache=default_cache_dir(data_dir),
    )


def _has_images(directory: Path) -> bool:
    try:
        with os.scandir(directory) as entries:
            return any(e.name.lower().endswith(_EXTENSIONS) for e in entries)
    except OSError:
        return False


# Reads the partition table on demand (None when there is none): only valid/test need it.
_PartitionLoader = Callable[[], "Mapping[str, int] | None"]


def _locate(path: Path) -> tuple[FileSource, _PartitionLoader] | None:
    """The image source at ``path`` and its partition loader; None if there is no CelebA there."""
    if path.is_file():
        return _zip_source(path)
    if not path.is_dir():
        return None
    # Prefer an extracted folder to a zip: no decompression, and any number of readers.
    nested = path / CELEBA_IMAGE_DIR
    for image_dir in (nested / CELEBA_IMAGE_DIR, nested, path):
        if _has_images(image_dir):
            names = list_image_files(image_dir, _EXTENSIONS, recursive=False)
            near = (image_dir, image_dir.parent, image_dir.parent.parent)
            return DirectorySource(image_dir, names), functools.partial(_partition_from_dirs, near)
    for zip_name in CELEBA_ZIP_NAMES:
        if (path / zip_name).is_file():
            return _zip_source(path / zip_name)
    return None


def _zip_source(zip_path: Path) -> tuple[ZipSource, _PartitionLoader]:
    zf = open_zip(zip_path)
    infos = zf.infolist()
    try:
        prefix, names, sizes = find_zip_images(infos, _EXTENSIONS, str(zip_path))
    except DatasetError:
        zf.close()
        raise
    if not names:
        zf.close()
        raise DatasetError(
            f"no .jpg images in {zip_path}: is it img_align_celeba.zip? {_NOT_FOUND_HELP}"
        )
    source = ZipSource(zip_path, prefix, names, sizes, handle=zf)

    def load_partitions() -> Mapping[str, int] | None:
        return _partition_from_zip(source.handle(), infos) or _partition_from_dirs(
            [zip_path.parent]
        )

    return source, load_partitions


def _partition_from_dirs(dirs: Sequence[Path]) -> Mapping[str, int] | None:
    for directory in dirs:
        for file_name in PARTITION_FILES:
            candidate = directory / file_name
            if candidate.is_file():
                return parse_partition(candidate.read_bytes(), str(candidate))
    return None


def _partition_from_zip(
    zf: zipfile.ZipFile, infos: Sequence[zipfile.ZipInfo]
) -> Mapping[str, int] | None:
    for info in infos:
        base = info.filename.rpartition("/")[2]
        if base in PARTITION_FILES and not info.filename.startswith("__MACOSX/"):
            # Bounded like an image: a partition file is ~3 MB, never a bomb's gigabyte.
            return parse_partition(read_member(zf, info), f"{zf.filename}:{info.filename}")
    return None


def parse_partition(data: bytes, where: str) -> dict[str, int]:
    """``list_eval_partition`` as {file name: 0 train, 1 valid, 2 test}; both .txt and .csv forms.

    The official .txt is ``000001.jpg 0`` lines; Kaggle's .csv is ``image_id,partition`` lines.
    """
    table: dict[str, int] = {}
    for line_no, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
        fields = re.split(r"[,\s]+", line.strip())
        if fields == [""]:
            continue
        if len(fields) == 2 and fields[1].isdigit():
            table[fields[0]] = int(fields[1])
        elif line_no != 1:  # the first line may be a CSV header
            raise DatasetError(
                f"malformed CelebA partition file {where} at line {line_no}: {line.strip()!r}"
            )
    return table


def _select_split(
    source: FileSource, partitions: Mapping[str, int] | None, split: str
) -> FileSource:
    if partitions is None:
        raise DatasetError(
            f"CelebA split {split!r} needs list_eval_partition.txt or .csv next to the images in "
            f"{source.location()}: add it (from the CelebA Eval folder) or use split 'train'"
        )
    code = _PARTITION_CODE[split]
    keep = [i for i, n in enumerate(source.names) if partitions.get(n) == code]
    if not keep:
        raise DatasetError(
            f"CelebA split {split!r} is empty: no image of {source.location()} is in it"
        )
    return source.subset(keep)
