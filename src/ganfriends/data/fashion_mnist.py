"""Fashion-MNIST: 28x28 grey clothes, padded to 32x32 and held in memory as one uint8 tensor.

Found on disk (Debian's ``dataset-fashion-mnist`` package, a data folder) or downloaded and
verified against the sha256 of the *decompressed* files, which are the same for every copy
(Debian recompresses the .gz files, so their own checksums differ).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from ganfriends.data.idx_dataset import (
    IDX_SPLIT_FILES,
    PADDED_SIZE,
    IdxDataset,
    check_split,
    download_idx_files,
    find_idx_folder,
)
from ganfriends.data.memory import download_or_explain
from ganfriends.data.paths import resolve_data_dir

FASHION_MNIST_URL = "https://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
FASHION_MNIST_URL_ENV = "GANFRIENDS_FASHION_MNIST_URL"
# split -> (images file, labels file), without the optional .gz
FASHION_MNIST_FILES = IDX_SPLIT_FILES
# sha256 of each file's decompressed bytes.
FASHION_MNIST_SHA256: dict[str, str] = {
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
}
# Searched after the data dir and ./data; tests replace it to make the dataset "absent".
SYSTEM_DIRS: tuple[Path, ...] = (Path("/usr/share/datasets/fashion-mnist"),)
_TITLE = "Fashion-MNIST"


def fashion_mnist_search_dirs(data_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """Where Fashion-MNIST is looked for, in order, when no explicit path is given."""
    cwd_data = Path.cwd() / "data"
    return [resolve_data_dir(data_dir) / "fashion-mnist", cwd_data / "fashion-mnist", cwd_data]


def find_fashion_mnist(
    path: str | os.PathLike[str] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    split: str | None = None,
    search: Sequence[Path] | None = None,
) -> Path | None:
    """The folder holding the Fashion-MNIST IDX files (of ``split``, or all four), or None.

    Order: ``path`` (DatasetError if given but without the files), then ``search`` (default:
    ``<data_dir>/fashion-mnist``, ``./data/fashion-mnist``, ``./data``, then :data:`SYSTEM_DIRS`).
    """
    dirs = search if search is not None else [*fashion_mnist_search_dirs(data_dir), *SYSTEM_DIRS]
    return find_idx_folder(path, dirs, title=_TITLE, split=split)


def download_fashion_mnist(
    dest: str | os.PathLike[str],
    *,
    base_url: str | None = None,
    checksums: Mapping[str, str] | None = None,
    progress: bool = True,
) -> Path:
    """Download the four IDX .gz files into ``dest`` (skipping those present) and return ``dest``.

    The base URL is ``base_url``, else ``$GANFRIENDS_FASHION_MNIST_URL``, else the upstream bucket.
    Each file is verified against ``checksums`` (default :data:`FASHION_MNIST_SHA256`, of the
    decompressed bytes) before it gets its final name.
    """
    base = base_url or os.environ.get(FASHION_MNIST_URL_ENV) or FASHION_MNIST_URL
    sums = FASHION_MNIST_SHA256 if checksums is None else checksums
    return download_idx_files(dest, base, sums, url_env=FASHION_MNIST_URL_ENV, progress=progress)


class FashionMNIST(IdxDataset):
    """One split of Fashion-MNIST as ``(1, size, size)`` images, with class labels (0-9)."""

    name = "fashion-mnist"
    title = _TITLE


def open_fashion_mnist(
    path: str | os.PathLike[str] | None = None,
    *,
    image_size: int = PADDED_SIZE,
    split: str = "train",
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
) -> FashionMNIST:
    """Find (or download into ``<data_dir>/fashion-mnist``) and load Fashion-MNIST."""
    check_split(split, _TITLE)
    root = find_fashion_mnist(path, data_dir, split=split)
    if root is None:
        target = resolve_data_dir(data_dir) / "fashion-mnist"
        root = download_or_explain(
            (lambda: download_fashion_mnist(target)) if download else None,
            title=_TITLE,
            looked=[*fashion_mnist_search_dirs(data_dir), *SYSTEM_DIRS],
            hint="install Debian's dataset-fashion-mnist package (sudo apt-get install "
            f"dataset-fashion-mnist) or put the four IDX .gz files in {target}",
        )
    return FashionMNIST(root, split=split, image_size=image_size)
