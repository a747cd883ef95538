"""Fashion-MNIST: 28x28 grey clothes, padded to 32x32 and held in memory as one uint8 tensor.

Found on disk (Debian's ``dataset-fashion-mnist`` package, a data folder) or downloaded and
verified against the sha256 of the *decompressed* files, which are the same for every copy
(Debian recompresses the .gz files, so their own checksums differ).
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
import torch.nn.functional as F

from ganfriends.data.base import DatasetFingerprint, ImageDataset, make_digest
from ganfriends.data.download import DownloadFailed, fetch_url
from ganfriends.data.idx import read_idx
from ganfriends.data.images import uint8_to_unit_range
from ganfriends.data.paths import resolve_data_dir
from ganfriends.errors import DatasetError

FASHION_MNIST_URL = "https://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
FASHION_MNIST_URL_ENV = "GANFRIENDS_FASHION_MNIST_URL"
# split -> (images file, labels file), without the optional .gz
FASHION_MNIST_FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# sha256 of each file's decompressed bytes.
FASHION_MNIST_SHA256: dict[str, str] = {
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
}
# Searched after the data dir and ./data; tests replace it to make the dataset "absent".
SYSTEM_DIRS: tuple[Path, ...] = (Path("/usr/share/datasets/fashion-mnist"),)

NATIVE_SIZE = 28  # pixels, the stored images
PADDED_SIZE = 32  # pixels, after 2 px of background on each side (the DCGAN-friendly size)
_RESIZE_CHUNK = 4096  # images resized per step, bounding the float32 working memory


def fashion_mnist_search_dirs(data_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """Where Fashion-MNIST is looked for, in order, when no explicit path is given."""
    cwd_data = Path.cwd() / "data"
    return [resolve_data_dir(data_dir) / "fashion-mnist", cwd_data / "fashion-mnist", cwd_data]


def _idx_file(directory: Path, base: str) -> Path | None:
    # The uncompressed file first: it loads faster when someone has extracted it.
    for candidate in (directory / base, directory / f"{base}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _has_files(directory: Path, splits: Sequence[str]) -> bool:
    bases = [b for s in splits for b in FASHION_MNIST_FILES[s]]
    return all(_idx_file(directory, b) is not None for b in bases)


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
    splits = (split,) if split is not None else tuple(FASHION_MNIST_FILES)
    if path is not None:
        explicit = Path(path).expanduser()
        directory = explicit.parent if explicit.is_file() else explicit
        if _has_files(directory, splits):
            return directory
        wanted = ", ".join(f"{b}.gz" for s in splits for b in FASHION_MNIST_FILES[s])
        raise DatasetError(f"Fashion-MNIST files not found in {directory}: expected {wanted}")
    dirs = search if search is not None else [*fashion_mnist_search_dirs(data_dir), *SYSTEM_DIRS]
    return next((d for d in dirs if _has_files(d, splits)), None)


def _verify_sha256(url: str, expected: str) -> Callable[[Path], None]:
    def verify(path: Path) -> None:
        try:
            data = gzip.decompress(path.read_bytes())
        except (OSError, EOFError, zlib.error):
            raise DatasetError(f"{url} did not give a valid .gz file; try again later") from None
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected:
            raise DatasetError(
                f"checksum mismatch for {url} (sha256 {actual[:16]}..., expected "
                f"{expected[:16]}...): the file was not kept; check {FASHION_MNIST_URL_ENV}"
            )

    return verify


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
    directory = Path(dest).expanduser()
    base = base_url or os.environ.get(FASHION_MNIST_URL_ENV) or FASHION_MNIST_URL
    base = base if base.endswith("/") else base + "/"
    sums = FASHION_MNIST_SHA256 if checksums is None else checksums
    for split_files in FASHION_MNIST_FILES.values():
        for name in split_files:
            if _idx_file(directory, name) is not None:
                continue
            url = f"{base}{name}.gz"
            if name not in sums:
                raise DatasetError(f"no sha256 known for {name}: cannot verify a download of it")
            verify = _verify_sha256(url, sums[name])
            fetch_url(url, directory / f"{name}.gz", verify=verify, progress=progress)
    return directory


class FashionMNIST(ImageDataset):
    """One split of Fashion-MNIST as ``(1, size, size)`` images, class labels in ``labels``."""

    name = "fashion-mnist"
    channels = 1
    in_memory = True

    def __init__(self, root: str | os.PathLike[str], *, split: str = "train", image_size: int = 32):
        if split not in FASHION_MNIST_FILES:
            choices = ", ".join(FASHION_MNIST_FILES)
            raise DatasetError(f"unknown Fashion-MNIST split {split!r}: choose one of {choices}")
        directory = Path(root)
        image_file, label_file = (_idx_file(directory, b) for b in FASHION_MNIST_FILES[split])
        if image_file is None or label_file is None:
            raise DatasetError(f"Fashion-MNIST {split} files not found in {directory}")
        raw = read_idx(image_file)
        labels = read_idx(label_file)
        if raw.dtype != np.uint8 or raw.ndim != 3 or raw.shape[1:] != (NATIVE_SIZE, NATIVE_SIZE):
            raise DatasetError(
                f"{image_file} is not a Fashion-MNIST image file (shape {raw.shape}, {raw.dtype})"
            )
        if labels.shape != (raw.shape[0],):
            raise DatasetError(
                f"{label_file} has {labels.shape} labels for {raw.shape[0]} images: "
                "the image and label files do not belong together"
            )
        self.split = split
        self.image_size = image_size
        self.labels: np.ndarray = labels.astype(np.int64)
        # The digest covers the raw pixels, so any other file version or split hashes differently.
        self._digest = make_digest(self.name, image_size, self.channels, [raw.data])
        self.pixels = _prepare(raw, image_size)  # (N, 1, S, S) uint8, the whole split

    def __len__(self) -> int:
        return int(self.pixels.shape[0])

    def __getitem__(self, index: int) -> torch.Tensor:
        return uint8_to_unit_range(self.pixels[self.check_index(index)])

    def get_batch(self, indices: Sequence[int]) -> tuple[torch.Tensor, int]:
        """Vectorised: one gather and one affine map; nothing is ever skipped."""
        idx = torch.as_tensor(indices, dtype=torch.long)
        if idx.numel() == 0:
            return self.empty_batch(), 0
        # Advanced indexing raises IndexError for out-of-range indices, like __getitem__.
        return uint8_to_unit_range(self.pixels[idx]), 0

    def fingerprint(self) -> DatasetFingerprint:
        """Digest of the raw pixels of this split, with name, image size and channels."""
        return DatasetFingerprint(
            self.name, len(self), self.image_size, self.channels, self._digest
        )


def _prepare(raw: np.ndarray, image_size: int) -> torch.Tensor:
    """Pad 28x28 to 32x32 with background, then resize to ``image_size`` (bilinear, antialiased)."""
    pad = (PADDED_SIZE - NATIVE_SIZE) // 2  # pixels per side
    padded = torch.from_numpy(np.pad(raw, ((0, 0), (pad, pad), (pad, pad)))).unsqueeze(1)
    if image_size == PADDED_SIZE:
        return padded
    out = torch.empty((padded.shape[0], 1, image_size, image_size), dtype=torch.uint8)
    for start in range(0, padded.shape[0], _RESIZE_CHUNK):
        chunk = padded[start : start + _RESIZE_CHUNK].to(torch.float32)
        resized = F.interpolate(
            chunk,
            size=(image_size, image_size),
            mode="bilinear",
            align_corners=False,
            antialias=True,
        )
        out[start : start + _RESIZE_CHUNK] = resized.round_().clamp_(0, 255).to(torch.uint8)
    return out


def open_fashion_mnist(
    path: str | os.PathLike[str] | None = None,
    *,
    image_size: int = PADDED_SIZE,
    split: str = "train",
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
) -> FashionMNIST:
    """Find (or download into ``<data_dir>/fashion-mnist``) and load Fashion-MNIST."""
    if split not in FASHION_MNIST_FILES:
        choices = ", ".join(FASHION_MNIST_FILES)
        raise DatasetError(f"unknown Fashion-MNIST split {split!r}: choose one of {choices}")
    root = find_fashion_mnist(path, data_dir, split=split)
    if root is None:
        target = resolve_data_dir(data_dir) / "fashion-mnist"
        reason = "downloads are disabled"
        if download:
            try:
                root = download_fashion_mnist(target)
            except DownloadFailed as exc:
                reason = exc.reason
            except DatasetError as exc:
                reason = str(exc)
        if root is None:
            looked = ", ".join(str(d) for d in [*fashion_mnist_search_dirs(data_dir), *SYSTEM_DIRS])
            raise DatasetError(
                f"Fashion-MNIST not found (looked in {looked}) and could not be downloaded "
                f"({reason}): install Debian's dataset-fashion-mnist package (sudo apt-get install "
                f"dataset-fashion-mnist) or put the four IDX .gz files in {target}"
            )
    return FashionMNIST(root, split=split, image_size=image_size)
