"""The dataset interface trainers and workers see, and the fingerprint that identifies the data.

A coordinator hands out image *indices*, so every machine must map an index to the same image:
each dataset defines a stable order (sorted file names, or the IDX file order), and its fingerprint
lets a worker prove it holds the same images, in the same order, at the same size, as the run.
"""

from __future__ import annotations

import abc
import dataclasses
import hashlib
import operator
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TypeVar

import numpy as np
import torch

from ganfriends.errors import DatasetError

_T = TypeVar("_T")

# Bumped whenever what goes into a digest changes, so old and new digests can never collide.
_DIGEST_VERSION = b"ganfriends-dataset-v1"


@dataclass(frozen=True)
class DatasetFingerprint:
    """What identifies a dataset across machines: same fingerprint, same index -> image mapping."""

    name: str
    size: int
    image_size: int
    channels: int
    digest: str  # hex sha256 of the content description plus name/image_size/channels

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict (the inverse of :meth:`from_dict`)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> DatasetFingerprint:
        """Rebuild a fingerprint stored with :meth:`to_dict`; DatasetError when it is malformed."""
        return cls(
            name=_field(data, "name", str),
            size=_field(data, "size", int),
            image_size=_field(data, "image_size", int),
            channels=_field(data, "channels", int),
            digest=_field(data, "digest", str),
        )

    def short(self) -> str:
        """A compact human-readable form, e.g. ``fashion-mnist/60000@32x1:ab12cd34``."""
        return f"{self.name}/{self.size}@{self.image_size}x{self.channels}:{self.digest[:8]}"

    def __str__(self) -> str:
        return self.short()


def _field(data: Mapping[str, object], key: str, kind: type[_T]) -> _T:
    value = data.get(key)
    # bool is an int subclass, but True is never a valid size.
    if not isinstance(value, kind) or isinstance(value, bool):
        raise DatasetError(
            f"malformed dataset fingerprint: {key!r} should be {kind.__name__}, got {value!r}"
        )
    return value


def make_digest(
    name: str, image_size: int, channels: int, chunks: Iterable[bytes | memoryview]
) -> str:
    """The hex sha256 of a versioned header (name, image_size, channels) and the content ``chunks``.

    The header makes the same files at another size, channel count or dataset kind hash differently.
    """
    h = hashlib.sha256()
    h.update(_DIGEST_VERSION + b"\0" + f"{name}\0{image_size}\0{channels}\0".encode())
    for chunk in chunks:
        h.update(chunk)
    return h.hexdigest()


class ImageDataset(abc.ABC):
    """Images addressed by index, each a ``(channels, size, size)`` float32 tensor in [-1, 1]."""

    name: str
    channels: int
    image_size: int
    # True when get_batch is cheap tensor indexing: BatchLoader then never starts worker processes.
    in_memory: bool = False

    @abc.abstractmethod
    def __len__(self) -> int:
        """The number of images."""

    @abc.abstractmethod
    def __getitem__(self, index: int) -> torch.Tensor | None:
        """Image ``index``, or None when that image cannot be read; IndexError when out of range."""

    @abc.abstractmethod
    def fingerprint(self) -> DatasetFingerprint:
        """The identity of this data (content, order, size, channels), without local paths."""

    def legacy_digests(self) -> tuple[str, ...]:
        """Digests an older ganfriends gave this same data (none unless its digest changed)."""
        return ()

    def labels(self) -> np.ndarray | None:
        """The class of each image, an int64 array of ``len(self)``, or None when it has no labels.

        Labels are ``0 .. num_classes() - 1`` and follow the image order, so ``labels()[i]`` is the
        class of image ``i``.
        """
        return None

    def num_classes(self) -> int | None:
        """How many classes :meth:`labels` draws from, or None when the dataset has no labels."""
        return None

    def get_batch(self, indices: Sequence[int]) -> tuple[torch.Tensor, int]:
        """The readable images of ``indices`` as ``(N_ok, C, H, W)``, and how many were skipped."""
        images = [self[i] for i in indices]
        ok = [img for img in images if img is not None]
        if not ok:
            return self.empty_batch(), len(images)
        return torch.stack(ok), len(images) - len(ok)

    def empty_batch(self) -> torch.Tensor:
        """A ``(0, C, H, W)`` batch, for a batch whose images were all unreadable."""
        return torch.empty((0, self.channels, self.image_size, self.image_size))

    def check_index(self, index: int) -> int:
        """``index`` as a non-negative int (negative counts from the end, like a list)."""
        i = operator.index(index)
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"image index {index} out of range for {self.name} ({n} images)")
        return i

    def close(self) -> None:  # noqa: B027 - optional hook: most datasets hold no files
        """Release open files (a no-op unless the dataset holds any)."""

    def __enter__(self) -> ImageDataset:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.name}: {len(self)} images, "
            f"{self.channels}x{self.image_size}x{self.image_size}>"
        )


def fingerprint_mismatch(dataset: ImageDataset, theirs: Mapping[str, object]) -> str | None:
    """None when ``dataset`` is the data of the fingerprint ``theirs`` (a run's stored dict), else
    one line saying why not, e.g. for a coordinator's or a worker's refusal.

    A run created by an older ganfriends stores a digest of another kind: when it is this data's
    old digest, the line says so (a new run is needed) instead of calling the files different.
    """
    mine = dataset.fingerprint()
    if mine.to_dict() == dict(theirs):
        return None
    try:
        other = DatasetFingerprint.from_dict(theirs)
    except DatasetError as exc:
        return f"the run's dataset fingerprint is unusable ({exc}): start a new run"
    same_shape = dataclasses.replace(other, digest=mine.digest) == mine
    if same_shape and other.digest in dataset.legacy_digests():
        return (
            f"the run's dataset fingerprint {other.short()} was made by an older ganfriends, "
            "which described this data otherwise (file names and sizes without contents, or "
            "images without their class labels): this copy matches it, but the instructor must "
            "start a new run (ganfriends coordinator --new-run)"
        )
    return f"this dataset {mine.short()} is not the run's {other.short()}"


def load_batch(dataset: ImageDataset, indices: Sequence[int]) -> tuple[torch.Tensor, int]:
    """Load one batch: the readable images of ``indices`` and the number skipped."""
    return dataset.get_batch(indices)
