"""Datasets held whole in memory as one uint8 tensor (MNIST, Fashion-MNIST, CIFAR-10).

Small datasets load once into ``(N, C, S, S)`` uint8, a quarter of float32's memory, and every
batch is one gather and one affine map to [-1, 1]: no worker processes, nothing ever skipped.
They are also the downloadable ones, so the "not found and not downloaded" message lives here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ganfriends.data.base import DatasetFingerprint, ImageDataset
from ganfriends.data.download import DownloadFailed
from ganfriends.data.images import uint8_to_unit_range
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


def download_or_explain(
    fetch: Callable[[], Path] | None, *, title: str, looked: Sequence[Path], hint: str
) -> Path:
    """``fetch()``'s result, or one DatasetError line: where we looked, why no download, ``hint``.

    ``fetch`` None means downloads are disabled. ``hint`` says how to get the data by hand.
    """
    reason = "downloads are disabled"
    if fetch is not None:
        try:
            return fetch()
        except DownloadFailed as exc:
            reason = exc.reason
        except DatasetError as exc:
            reason = str(exc)
    places = ", ".join(str(d) for d in looked)
    raise DatasetError(
        f"{title} not found (looked in {places}) and could not be downloaded ({reason}): {hint}"
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
