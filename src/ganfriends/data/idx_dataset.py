"""MNIST-style datasets: 28x28 grey IDX files, found, downloaded, checked and padded to 32x32.

MNIST and Fashion-MNIST share file names, format and shape; only their home, their download
mirror and their checksums differ, so each is a thin layer over this module. Checksums are of the
*decompressed* files, which are the same for every copy (mirrors and Debian recompress the .gz).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from ganfriends.data.base import make_digest
from ganfriends.data.download import fetch_url
from ganfriends.data.idx import read_idx
from ganfriends.data.memory import InMemoryDataset, checked_labels, resize_uint8
from ganfriends.errors import DatasetError

# split -> (images file, labels file), without the optional .gz
IDX_SPLIT_FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
NATIVE_SIZE = 28  # pixels, the stored images
PADDED_SIZE = 32  # pixels, after 2 px of background on each side (the DCGAN-friendly size)
NUM_CLASSES = 10  # digits 0-9, or Fashion-MNIST's ten kinds of clothes


def check_split(split: str, title: str) -> None:
    """DatasetError naming the choices unless ``split`` is ``train`` or ``test``."""
    if split not in IDX_SPLIT_FILES:
        choices = ", ".join(IDX_SPLIT_FILES)
        raise DatasetError(f"unknown {title} split {split!r}: choose one of {choices}")


def idx_file(directory: Path, base: str) -> Path | None:
    """``directory/base`` or ``directory/base.gz``, whichever exists first, else None."""
    # The uncompressed file first: it loads faster when someone has extracted it.
    for candidate in (directory / base, directory / f"{base}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _has_files(directory: Path, splits: Sequence[str]) -> bool:
    bases = [b for s in splits for b in IDX_SPLIT_FILES[s]]
    return all(idx_file(directory, b) is not None for b in bases)


def find_idx_folder(
    path: str | os.PathLike[str] | None,
    search: Sequence[Path],
    *,
    title: str,
    split: str | None = None,
) -> Path | None:
    """The folder holding the IDX files (of ``split``, or all four), or None.

    ``path``, when given, must hold them (DatasetError otherwise); a path to one of the files means
    its folder. Without ``path``, the first folder of ``search`` that holds them.
    """
    splits = (split,) if split is not None else tuple(IDX_SPLIT_FILES)
    if path is not None:
        explicit = Path(path).expanduser()
        directory = explicit.parent if explicit.is_file() else explicit
        if _has_files(directory, splits):
            return directory
        wanted = ", ".join(f"{b}.gz" for s in splits for b in IDX_SPLIT_FILES[s])
        raise DatasetError(f"{title} files not found in {directory}: expected {wanted}")
    return next((d for d in search if _has_files(d, splits)), None)


def _verify_sha256(url: str, expected: str, url_env: str) -> Callable[[Path], None]:
    def verify(path: Path) -> None:
        try:
            data = gzip.decompress(path.read_bytes())
        except (OSError, EOFError, zlib.error):
            raise DatasetError(f"{url} did not give a valid .gz file; try again later") from None
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected:
            raise DatasetError(
                f"checksum mismatch for {url} (sha256 {actual[:16]}..., expected "
                f"{expected[:16]}...): the file was not kept; check {url_env}"
            )

    return verify


def download_idx_files(
    dest: str | os.PathLike[str],
    base_url: str,
    checksums: Mapping[str, str],
    *,
    url_env: str,
    progress: bool = True,
) -> Path:
    """Download the four IDX .gz files from ``base_url`` into ``dest`` and return ``dest``.

    Files already there are skipped. Each download is checked against ``checksums`` (sha256 of the
    decompressed bytes) before it gets its final name; a mismatch message points at ``url_env``.
    """
    directory = Path(dest).expanduser()
    base = base_url if base_url.endswith("/") else base_url + "/"
    for split_files in IDX_SPLIT_FILES.values():
        for name in split_files:
            if idx_file(directory, name) is not None:
                continue
            url = f"{base}{name}.gz"
            if name not in checksums:
                raise DatasetError(f"no sha256 known for {name}: cannot verify a download of it")
            verify = _verify_sha256(url, checksums[name], url_env)
            fetch_url(url, directory / f"{name}.gz", verify=verify, progress=progress)
    return directory


def pad_to_32(raw: np.ndarray) -> torch.Tensor:
    """``(N, 28, 28)`` uint8 as ``(N, 1, 32, 32)``, with 2 px of background (0) on each side."""
    pad = (PADDED_SIZE - NATIVE_SIZE) // 2  # pixels per side
    return torch.from_numpy(np.pad(raw, ((0, 0), (pad, pad), (pad, pad)))).unsqueeze(1)


class IdxDataset(InMemoryDataset):
    """One split of an MNIST-style dataset as ``(1, size, size)`` images, with class labels.

    Subclasses set ``name`` (fingerprints) and ``title`` (messages). Images are padded 28 -> 32,
    then resized to ``image_size`` when it differs (bilinear, antialiased).
    """

    title: str
    channels = 1

    def __init__(self, root: str | os.PathLike[str], *, split: str = "train", image_size: int = 32):
        check_split(split, self.title)
        directory = Path(root)
        image_file, label_file = (idx_file(directory, b) for b in IDX_SPLIT_FILES[split])
        if image_file is None or label_file is None:
            raise DatasetError(f"{self.title} {split} files not found in {directory}")
        raw = read_idx(image_file)
        labels = read_idx(label_file)
        if raw.dtype != np.uint8 or raw.ndim != 3 or raw.shape[1:] != (NATIVE_SIZE, NATIVE_SIZE):
            raise DatasetError(
                f"{image_file} is not a {self.title} image file (shape {raw.shape}, {raw.dtype})"
            )
        checked = checked_labels(labels, raw.shape[0], NUM_CLASSES, str(label_file))
        self.split = split
        # The digest covers the raw pixels, so any other file version or split hashes differently.
        digest = make_digest(self.name, image_size, self.channels, [raw.data])
        pixels = resize_uint8(pad_to_32(raw), image_size)
        super().__init__(pixels, digest, labels=checked, num_classes=NUM_CLASSES)
