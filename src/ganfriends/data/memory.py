"""Datasets held whole in memory as one uint8 tensor (MNIST, Fashion-MNIST, CIFAR-10).

Small datasets load once into ``(N, C, S, S)`` uint8, a quarter of float32's memory, and every
batch is one gather and one affine map to [-1, 1]: no worker processes, nothing ever skipped.
They are also the downloadable ones, so the "not found and not downloaded" message lives here.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import ClassVar, TypeVar

import numpy as np
import torch
import torch.nn.functional as F

from ganfriends.data.base import DatasetFingerprint, ImageDataset, make_digest
from ganfriends.data.download import DownloadFailed
from ganfriends.data.images import uint8_to_unit_range
from ganfriends.data.paths import resolve_data_dir
from ganfriends.errors import DatasetError

_RESIZE_CHUNK = 4096  # images resized per step, bounding the float32 working memory


def resize_uint8(images: torch.Tensor, size: int) -> torch.Tensor:
    """``(N, C, H, W)`` uint8 images at ``size`` x ``size`` (bilinear, antialiased), rounded."""
    if tuple(images.shape[-2:]) == (size, size):
        return images
    count, channels = images.shape[:2]
    out = torch.empty((count, channels, size, size), dtype=torch.uint8)
    for start in range(0, count, _RESIZE_CHUNK):
        chunk = images[start : start + _RESIZE_CHUNK].to(torch.float32)
        resized = F.interpolate(
            chunk,
            size=(size, size),
            mode="bilinear",
            align_corners=False,
            antialias=True,
        )
        out[start : start + _RESIZE_CHUNK] = resized.round_().clamp_(0, 255).to(torch.uint8)
    return out


def checked_labels(labels: np.ndarray, count: int, num_classes: int, where: str) -> np.ndarray:
    """``labels`` as int64 after checking there is one per image, each in ``0 .. num_classes-1``.

    A partitioner indexes per-class tables with these, so a bad file must fail here, by name.
    """
    if labels.shape != (count,):
        raise DatasetError(
            f"{where} has {labels.shape} labels for {count} images: "
            "the image and label files do not belong together"
        )
    out = labels.astype(np.int64)
    if count and (int(out.min()) < 0 or int(out.max()) >= num_classes):
        raise DatasetError(
            f"{where} has labels outside 0..{num_classes - 1} "
            f"({int(out.min())}..{int(out.max())}): delete it and get it again"
        )
    return out


def check_split(split: str, splits: Collection[str], title: str) -> None:
    """DatasetError naming the choices unless ``split`` is one of ``splits``."""
    if split not in splits:
        raise DatasetError(f"unknown {title} split {split!r}: choose one of {', '.join(splits)}")


class DatasetHome:
    """Where a downloadable dataset is looked for, and how it is fetched.

    Subclasses say what a folder holding it looks like (:meth:`source_in`), how to download it
    and how to get it by hand; the search order, the explicit path and the not-found message are
    the same for all.
    """

    title: str  # its name in messages
    folder: str  # its folder under the data dir (and ./data), where a download goes
    splits: Collection[str]  # the splits it has
    system_dirs: tuple[Path, ...] = ()  # searched last: where a system package puts it
    # Whether ./data itself is searched: only one of datasets that share file names may claim it.
    bare_cwd_data: bool = False

    def default_dirs(self, data_dir: str | os.PathLike[str] | None = None) -> list[Path]:
        """Where it is looked for, in order, when no explicit path is given."""
        cwd_data = Path.cwd() / "data"
        local = [resolve_data_dir(data_dir) / self.folder, cwd_data / self.folder]
        return [*local, *([cwd_data] if self.bare_cwd_data else []), *self.system_dirs]

    def source_in(self, directory: Path, split: str | None) -> Path | None:
        """Where in ``directory`` the files of ``split`` (every split if None) are, or None."""
        raise NotImplementedError

    def is_archive(self, path: Path) -> bool:
        """Whether the file ``path`` is itself the data (not one file of a folder of them)."""
        return False

    def missing(self, directory: Path, split: str | None) -> str:
        """The message for an explicit folder without the files."""
        return f"{self.title} not found in {directory}"

    def find(
        self,
        path: str | os.PathLike[str] | None = None,
        data_dir: str | os.PathLike[str] | None = None,
        *,
        split: str | None = None,
        search: Sequence[Path] | None = None,
    ) -> Path | None:
        """Where the files of ``split`` (or every split) are, or None.

        ``path``, when given, must hold them (DatasetError otherwise); a path to one of the files
        means its folder. Without ``path``, the first folder of ``search`` that holds them
        (default: :meth:`default_dirs`).
        """
        if path is not None:
            explicit = Path(path).expanduser()
            if explicit.is_file() and self.is_archive(explicit):
                return explicit
            directory = explicit.parent if explicit.is_file() else explicit
            found = self.source_in(directory, split)
            if found is None:
                raise DatasetError(self.missing(directory, split))
            return found
        dirs = search if search is not None else self.default_dirs(data_dir)
        return next((s for d in dirs if (s := self.source_in(d, split)) is not None), None)

    def download(self, dest: str | os.PathLike[str], *, progress: bool = True) -> Path:
        """Fetch and verify the files into ``dest``; where they are then."""
        raise NotImplementedError

    def manual_steps(self, target: Path) -> str:
        """How to get the files into ``target`` by hand, for the not-found message."""
        raise NotImplementedError

    def locate(
        self,
        path: str | os.PathLike[str] | None,
        *,
        split: str,
        data_dir: str | os.PathLike[str] | None,
        download: bool,
    ) -> Path:
        """Where ``split`` is: found, else downloaded into ``<data dir>/<folder>``.

        DatasetError for an unknown split. Else one DatasetError line: where we looked, why
        there was no download (downloads disabled by ``download`` False, or the download's own
        error), and the manual steps.
        """
        check_split(split, self.splits, self.title)
        found = self.find(path, data_dir, split=split)
        if found is not None:
            return found
        target = resolve_data_dir(data_dir) / self.folder
        reason = "downloads are disabled"
        if download:
            try:
                return self.download(target)
            except DownloadFailed as exc:
                reason = exc.reason
            except DatasetError as exc:
                reason = str(exc)
        places = ", ".join(str(d) for d in self.default_dirs(data_dir))
        raise DatasetError(
            f"{self.title} not found (looked in {places}) and could not be downloaded "
            f"({reason}): {self.manual_steps(target)}"
        )


class InMemoryDataset(ImageDataset):
    """Images held as one ``(N, C, S, S)`` uint8 tensor, with optional class labels.

    Subclasses set ``name`` and ``channels`` and call ``__init__`` with the loaded content.
    """

    in_memory = True

    def __init__(
        self,
        pixels: torch.Tensor,
        digest: str,
        *,
        labels: np.ndarray | None = None,
        num_classes: int | None = None,
    ) -> None:
        self.pixels = pixels  # (N, C, S, S) uint8, the whole split
        self.image_size = int(pixels.shape[-1])
        self._digest = digest
        self._labels = labels
        self._num_classes = num_classes if labels is not None else None

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

    def labels(self) -> np.ndarray | None:
        """The class of each image (int64, in image order), a copy: callers may modify it."""
        return None if self._labels is None else self._labels.copy()

    def num_classes(self) -> int | None:
        """How many classes the labels draw from, or None without labels."""
        return self._num_classes

    def fingerprint(self) -> DatasetFingerprint:
        """Digest of the raw pixels of this split, with name, image size and channels."""
        return DatasetFingerprint(
            self.name, len(self), self.image_size, self.channels, self._digest
        )


_D = TypeVar("_D", bound="DownloadableDataset")


class DownloadableDataset(InMemoryDataset):
    """One split of a labelled dataset that is found on disk or downloaded, read whole.

    Subclasses set ``name``, ``channels`` and ``home`` (where it lives, how it is fetched), and
    read a split's files in :meth:`read_split`; opening, checking the labels, the digest and the
    resize are done here, the same for all.
    """

    home: ClassVar[DatasetHome]
    num_labels: ClassVar[int] = 10  # classes its labels draw from

    def __init__(self, root: str | os.PathLike[str], *, split: str = "train", image_size: int = 32):
        check_split(split, self.home.splits, self.home.title)
        raw, labels, where = self.read_split(Path(root), split)
        checked = checked_labels(labels, raw.shape[0], self.num_labels, where)
        self.split = split
        # The digest covers the raw pixels, so any other file version or split hashes differently.
        digest = make_digest(self.name, image_size, self.channels, [raw.data])
        pixels = resize_uint8(self.to_pixels(raw), image_size)
        super().__init__(pixels, digest, labels=checked, num_classes=self.num_labels)

    def read_split(self, root: Path, split: str) -> tuple[np.ndarray, np.ndarray, str]:
        """The split's raw uint8 images, its labels (one per image) and where the labels are."""
        raise NotImplementedError

    def to_pixels(self, raw: np.ndarray) -> torch.Tensor:
        """The raw images as ``(N, C, S, S)`` uint8 at the dataset's natural size."""
        return torch.from_numpy(raw)

    @classmethod
    def open(
        cls: type[_D],
        path: str | os.PathLike[str] | None = None,
        *,
        image_size: int = 32,
        split: str = "train",
        data_dir: str | os.PathLike[str] | None = None,
        download: bool = True,
    ) -> _D:
        """Find (or download into ``<data_dir>/<folder>``) and load one split.

        ``path`` is where the files are (DatasetError if they are not there); without it the
        usual places are searched, then the data is downloaded unless ``download`` is False.
        """
        root = cls.home.locate(path, split=split, data_dir=data_dir, download=download)
        return cls(root, split=split, image_size=image_size)
