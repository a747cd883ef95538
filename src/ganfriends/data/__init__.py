"""Datasets for training: Fashion-MNIST, MNIST, CIFAR-10, CelebA and any folder of images.

Every dataset maps an index to a ``(C, S, S)`` float32 image in [-1, 1] identically on every
machine, and has a :class:`DatasetFingerprint` that lets a worker prove it holds the run's data.
"""

from __future__ import annotations

from ganfriends.data.base import (
    DatasetFingerprint,
    ImageDataset,
    fingerprint_mismatch,
    load_batch,
)
from ganfriends.data.celeba import CELEBA_SPLITS, default_celeba_dirs, open_celeba
from ganfriends.data.cifar10 import (
    CIFAR10,
    CIFAR10_SHA256,
    CIFAR10_URL_ENV,
    download_cifar10,
    find_cifar10,
    open_cifar10,
)
from ganfriends.data.download import (
    CELEBA_URL_ENV,
    celeba_manual_steps,
    download_celeba,
    fetch_url,
)
from ganfriends.data.factory import DATASET_NAMES, DEFAULT_IMAGE_SIZES, make_dataset
from ganfriends.data.fashion_mnist import (
    FASHION_MNIST_SHA256,
    FASHION_MNIST_URL_ENV,
    FashionMNIST,
    download_fashion_mnist,
    find_fashion_mnist,
    open_fashion_mnist,
)
from ganfriends.data.files import FileDataset
from ganfriends.data.folder import open_folder
from ganfriends.data.idx import read_idx
from ganfriends.data.images import IMAGE_EXTENSIONS, decode_image, image_to_tensor
from ganfriends.data.loader import BatchLoader
from ganfriends.data.memory import InMemoryDataset
from ganfriends.data.mnist import (
    MNIST,
    MNIST_SHA256,
    MNIST_URL_ENV,
    download_mnist,
    find_mnist,
    open_mnist,
)
from ganfriends.data.paths import DATA_DIR_ENV, default_data_dir

__all__ = [
    "CELEBA_SPLITS",
    "CELEBA_URL_ENV",
    "CIFAR10",
    "CIFAR10_SHA256",
    "CIFAR10_URL_ENV",
    "DATASET_NAMES",
    "DATA_DIR_ENV",
    "DEFAULT_IMAGE_SIZES",
    "FASHION_MNIST_SHA256",
    "FASHION_MNIST_URL_ENV",
    "IMAGE_EXTENSIONS",
    "MNIST",
    "MNIST_SHA256",
    "MNIST_URL_ENV",
    "BatchLoader",
    "DatasetFingerprint",
    "FashionMNIST",
    "FileDataset",
    "ImageDataset",
    "InMemoryDataset",
    "celeba_manual_steps",
    "decode_image",
    "default_celeba_dirs",
    "default_data_dir",
    "download_celeba",
    "download_cifar10",
    "download_fashion_mnist",
    "download_mnist",
    "fetch_url",
    "find_cifar10",
    "find_fashion_mnist",
    "find_mnist",
    "fingerprint_mismatch",
    "image_to_tensor",
    "load_batch",
    "make_dataset",
    "open_celeba",
    "open_cifar10",
    "open_fashion_mnist",
    "open_folder",
    "open_mnist",
    "read_idx",
]
