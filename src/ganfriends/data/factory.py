"""``make_dataset``: one entry point from a dataset name and options to an :class:`ImageDataset`."""

from __future__ import annotations

import os

from ganfriends.data.base import ImageDataset
from ganfriends.data.celeba import open_celeba
from ganfriends.data.cifar10 import open_cifar10
from ganfriends.data.fashion_mnist import open_fashion_mnist
from ganfriends.data.folder import open_folder
from ganfriends.data.mnist import open_mnist
from ganfriends.errors import DatasetError

DATASET_NAMES = ("fashion-mnist", "mnist", "cifar10", "celeba", "folder")
# The natural output size of each dataset, in pixels (height == width).
DEFAULT_IMAGE_SIZES: dict[str, int] = {
    "fashion-mnist": 32,
    "mnist": 32,
    "cifar10": 32,
    "celeba": 64,
    "folder": 64,
}
_FOLDER_SPLITS = ("train", "all")


def make_dataset(
    name: str,
    *,
    path: str | os.PathLike[str] | None = None,
    image_size: int | None = None,
    split: str = "train",
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
) -> ImageDataset:
    """The dataset ``name`` (one of :data:`DATASET_NAMES`), found, downloaded if allowed, and ready.

    ``image_size`` None means the dataset's natural size (:data:`DEFAULT_IMAGE_SIZES`).
    """
    if name not in DATASET_NAMES:
        raise DatasetError(f"unknown dataset {name!r}: choose one of {', '.join(DATASET_NAMES)}")
    size = DEFAULT_IMAGE_SIZES[name] if image_size is None else image_size
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise DatasetError(f"image size must be a positive number of pixels, got {image_size!r}")
    if name == "fashion-mnist":
        return open_fashion_mnist(
            path, image_size=size, split=split, data_dir=data_dir, download=download
        )
    if name == "mnist":
        return open_mnist(path, image_size=size, split=split, data_dir=data_dir, download=download)
    if name == "cifar10":
        return open_cifar10(
            path, image_size=size, split=split, data_dir=data_dir, download=download
        )
    if name == "celeba":
        return open_celeba(path, image_size=size, split=split, data_dir=data_dir)
    if path is None:
        raise DatasetError("the folder dataset needs a folder of images: pass --dataset-path DIR")
    if split not in _FOLDER_SPLITS:
        raise DatasetError(f"the folder dataset has no {split!r} split: it uses every image")
    return open_folder(path, image_size=size, data_dir=data_dir)
