"""MNIST-style datasets: 28x28 grey IDX files, found, downloaded, checked and padded to 32x32.

MNIST and Fashion-MNIST share file names, format and shape; only their home, their download
mirror and their checksums differ, so each is an :class:`IdxSpec` declaration read by this module.
Checksums are of the *decompressed* files, which are the same for every copy (mirrors and Debian
recompress the .gz).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from ganfriends.data.download import check_sha256, fetch_url
from ganfriends.data.idx import read_idx
from ganfriends.data.memory import DatasetHome, DownloadableDataset
from ganfriends.errors import DatasetError

# split -> (images file, labels file), without the optional .gz
IDX_SPLIT_FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
NATIVE_SIZE = 28  # pixels, the stored images
PADDED_SIZE = 32  # pixels, after 2 px of background on each side (the DCGAN-friendly size)
NUM_CLASSES = 10  # digits 0-9, or Fashion-MNIST's ten kinds of clothes


def idx_file(directory: Path, base: str) -> Path | None:
    """``directory/base`` or ``directory/base.gz``, whichever exists first, else None."""
    # The uncompressed file first: it loads faster when someone has extracted it.
    for candidate in (directory / base, directory / f"{base}.gz"):
        if candidate.is_file():
            return candidate
    return None


@dataclass
class IdxSpec(DatasetHome):
    """One MNIST-style dataset, declared: where it lives, where it comes from, its checksums.

    Mutable so that tests can hide the system folders or pin other checksums.
    """

    name: str  # its folder under the data dir (and ./data), and its fingerprints' name
    title: str  # its name in messages
    url: str  # the download mirror, a folder of the four .gz files
    url_env: str  # the variable that names another mirror
    sha256: dict[str, str]  # base file name -> sha256 of its decompressed bytes
    hint: str  # how to get it by hand; ``{target}`` is the data dir's folder for it
    system_dirs: tuple[Path, ...] = ()
    bare_cwd_data: bool = False
    # split -> (images file, labels file): the same names for every MNIST-style dataset
    files: Mapping[str, tuple[str, str]] = field(default_factory=lambda: dict(IDX_SPLIT_FILES))
    folder: str = field(init=False)
    splits: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        self.folder = self.name
        self.splits = tuple(self.files)

    def source_in(self, directory: Path, split: str | None) -> Path | None:
        """``directory`` when it holds the IDX files of ``split`` (or all four), else None."""
        splits = (split,) if split is not None else self.splits
        bases = [b for s in splits for b in self.files[s]]
        return directory if all(idx_file(directory, b) is not None for b in bases) else None

    def missing(self, directory: Path, split: str | None) -> str:
        """Names the files expected."""
        splits = (split,) if split is not None else self.splits
        wanted = ", ".join(f"{b}.gz" for s in splits for b in self.files[s])
        return f"{self.title} files not found in {directory}: expected {wanted}"

    def download(
        self,
        dest: str | os.PathLike[str],
        *,
        base_url: str | None = None,
        checksums: Mapping[str, str] | None = None,
        progress: bool = True,
    ) -> Path:
        """Download the four IDX .gz files into ``dest`` (skipping those present); ``dest``.

        The base URL is ``base_url``, else the variable :attr:`url_env`, else :attr:`url`. Each
        file is verified against ``checksums`` (default :attr:`sha256`, of the decompressed bytes)
        before it gets its final name.
        """
        directory = Path(dest).expanduser()
        base = base_url or os.environ.get(self.url_env) or self.url
        base = base if base.endswith("/") else base + "/"
        sums = self.sha256 if checksums is None else checksums
        for split_files in self.files.values():
            for name in split_files:
                if idx_file(directory, name) is not None:
                    continue
                if name not in sums:
                    raise DatasetError(
                        f"no sha256 known for {name}: cannot verify a download of it"
                    )
                url = f"{base}{name}.gz"
                verify = _verify_gzip_sha256(url, sums[name], self.url_env)
                fetch_url(url, directory / f"{name}.gz", verify=verify, progress=progress)
        return directory

    def manual_steps(self, target: Path) -> str:
        """How to get the files into ``target`` by hand."""
        return self.hint.format(target=target)


def _verify_gzip_sha256(url: str, expected: str, url_env: str) -> Callable[[Path], None]:
    def verify(path: Path) -> None:
        try:
            data = gzip.decompress(path.read_bytes())
        except (OSError, EOFError, zlib.error):
            raise DatasetError(f"{url} did not give a valid .gz file; try again later") from None
        check_sha256(hashlib.sha256(data).hexdigest(), expected, url, url_env)

    return verify


def pad_to_32(raw: np.ndarray) -> torch.Tensor:
    """``(N, 28, 28)`` uint8 as ``(N, 1, 32, 32)``, with 2 px of background (0) on each side."""
    pad = (PADDED_SIZE - NATIVE_SIZE) // 2  # pixels per side
    return torch.from_numpy(np.pad(raw, ((0, 0), (pad, pad), (pad, pad)))).unsqueeze(1)


class IdxDataset(DownloadableDataset):
    """One split of an MNIST-style dataset as ``(1, size, size)`` images, with class labels.

    Subclasses set ``home`` (their :class:`IdxSpec`) and ``name`` (its name). Images are padded
    28 -> 32, then resized to ``image_size`` when it differs (bilinear, antialiased).
    """

    home: ClassVar[IdxSpec]
    channels = 1
    num_labels = NUM_CLASSES

    def read_split(self, root: Path, split: str) -> tuple[np.ndarray, np.ndarray, str]:
        """The split's two IDX files: images ``(N, 28, 28)`` uint8 and labels."""
        title = self.home.title
        image_file, label_file = (idx_file(root, b) for b in self.home.files[split])
        if image_file is None or label_file is None:
            raise DatasetError(f"{title} {split} files not found in {root}")
        raw = read_idx(image_file)
        if raw.dtype != np.uint8 or raw.ndim != 3 or raw.shape[1:] != (NATIVE_SIZE, NATIVE_SIZE):
            raise DatasetError(
                f"{image_file} is not a {title} image file (shape {raw.shape}, {raw.dtype})"
            )
        return raw, read_idx(label_file), str(label_file)

    def to_pixels(self, raw: np.ndarray) -> torch.Tensor:
        """Padded to 32x32 with background."""
        return pad_to_32(raw)
