"""MNIST: 28x28 grey handwritten digits, padded to 32x32 and held in memory as one uint8 tensor.

Found in a data folder or downloaded from a mirror (the original host often refuses scripts) and
verified against the sha256 of the *decompressed* files, which every faithful copy shares.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from ganfriends.data.idx_dataset import (
    PADDED_SIZE,
    IdxDataset,
    check_split,
    download_idx_files,
    find_idx_folder,
)
from ganfriends.data.memory import download_or_explain
from ganfriends.data.paths import resolve_data_dir

MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
MNIST_URL_ENV = "GANFRIENDS_MNIST_URL"
# sha256 of each file's decompressed bytes. Not published by the dataset's authors (they give
# none); these are the values many independent projects pin for the LeCun files and their mirrors.
MNIST_SHA256: dict[str, str] = {
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
}
_TITLE = "MNIST"


def mnist_search_dirs(data_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """Where MNIST is looked for, in order, when no explicit path is given.

    Not ``./data`` itself, unlike Fashion-MNIST: the two share file names, so a bare folder would
    be ambiguous.
    """
    return [resolve_data_dir(data_dir) / "mnist", Path.cwd() / "data" / "mnist"]


def find_mnist(
    path: str | os.PathLike[str] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    split: str | None = None,
    search: Sequence[Path] | None = None,
) -> Path | None:
    """The folder holding the MNIST IDX files (of ``split``, or all four), or None.

    Order: ``path`` (DatasetError if given but without the files), then ``search`` (default:
    ``<data_dir>/mnist``, then ``./data/mnist``).
    """
    dirs = search if search is not None else mnist_search_dirs(data_dir)
    return find_idx_folder(path, dirs, title=_TITLE, split=split)


def download_mnist(
    dest: str | os.PathLike[str],
    *,
    base_url: str | None = None,
    checksums: Mapping[str, str] | None = None,
    progress: bool = True,
) -> Path:
    """Download the four IDX .gz files into ``dest`` (skipping those present) and return ``dest``.

    The base URL is ``base_url``, else ``$GANFRIENDS_MNIST_URL``, else :data:`MNIST_URL`. Each
    file is verified against ``checksums`` (default :data:`MNIST_SHA256`, of the decompressed
    bytes) before it gets its final name.
    """
    base = base_url or os.environ.get(MNIST_URL_ENV) or MNIST_URL
    sums = MNIST_SHA256 if checksums is None else checksums
    return download_idx_files(dest, base, sums, url_env=MNIST_URL_ENV, progress=progress)


class MNIST(IdxDataset):
    """One split of MNIST as ``(1, size, size)`` images, with the digits (0-9) as labels."""

    name = "mnist"
    title = _TITLE


def open_mnist(
    path: str | os.PathLike[str] | None = None,
    *,
    image_size: int = PADDED_SIZE,
    split: str = "train",
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
) -> MNIST:
    """Find (or download into ``<data_dir>/mnist``) and load MNIST."""
    check_split(split, _TITLE)
    root = find_mnist(path, data_dir, split=split)
    if root is None:
        target = resolve_data_dir(data_dir) / "mnist"
        root = download_or_explain(
            (lambda: download_mnist(target)) if download else None,
            title=_TITLE,
            looked=mnist_search_dirs(data_dir),
            hint=f"put the four IDX .gz files (train-images-idx3-ubyte.gz, ...) in {target}, "
            f"or set {MNIST_URL_ENV} to a mirror that serves them",
        )
    return MNIST(root, split=split, image_size=image_size)
