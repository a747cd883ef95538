"""The real Fashion-MNIST, as Debian's dataset-fashion-mnist package installs it."""

from __future__ import annotations

import hashlib
import statistics
import time

import pytest
import torch
from gf_data_helpers import REAL_FASHION_MNIST, needs_real_fashion_mnist

from ganfriends.data import FASHION_MNIST_SHA256, FashionMNIST, make_dataset
from ganfriends.data.idx import read_bytes_maybe_gzip

pytestmark = needs_real_fashion_mnist


@pytest.fixture(scope="module")
def train() -> FashionMNIST:
    return FashionMNIST(REAL_FASHION_MNIST, split="train")


@pytest.fixture(scope="module")
def test64() -> FashionMNIST:
    return FashionMNIST(REAL_FASHION_MNIST, split="test", image_size=64)


def test_the_installed_files_match_the_known_decompressed_checksums() -> None:
    for name, expected in FASHION_MNIST_SHA256.items():
        data = read_bytes_maybe_gzip(REAL_FASHION_MNIST / f"{name}.gz")
        assert hashlib.sha256(data).hexdigest() == expected, name


def test_make_dataset_finds_the_system_copy_by_default() -> None:
    ds = make_dataset("fashion-mnist", split="test", download=False)
    assert (len(ds), ds.image_size, ds.channels) == (10000, 32, 1)


def test_train_split_has_60000_images(train: FashionMNIST) -> None:
    assert len(train) == 60000


def test_test_split_has_10000_images(test64: FashionMNIST) -> None:
    assert len(test64) == 10000


def test_an_image_is_1x32x32_float32_in_unit_range(train: FashionMNIST) -> None:
    img = train[0]
    assert img.shape == (1, 32, 32)
    assert img.dtype == torch.float32
    assert img.min() >= -1.0 and img.max() <= 1.0


def test_the_whole_split_spans_exactly_minus_one_to_one(train: FashionMNIST) -> None:
    batch, _ = train.get_batch(range(0, 60000, 7))
    assert batch.min().item() == -1.0 and batch.max().item() == 1.0


def test_the_two_pixel_padding_is_background(train: FashionMNIST) -> None:
    batch, _ = train.get_batch(range(0, 60000, 97))
    border = torch.ones(32, 32, dtype=torch.bool)
    border[2:30, 2:30] = False
    assert torch.all(batch[:, 0, border] == -1.0)


def test_first_train_labels_are_the_published_ones(train: FashionMNIST) -> None:
    labels = train.labels()
    assert labels is not None and labels[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
    assert labels.dtype.name == "int64"


def test_get_batch_equals_stacked_getitem(train: FashionMNIST) -> None:
    indices = [5, 59999, 0, 123, 5]
    batch, skipped = train.get_batch(indices)
    assert skipped == 0
    assert torch.equal(batch, torch.stack([train[i] for i in indices]))


def test_get_batch_of_128_takes_well_under_a_millisecond(train: FashionMNIST) -> None:
    indices = torch.randperm(60000)[:128].tolist()
    times = []
    for _ in range(30):
        start = time.perf_counter()
        train.get_batch(indices)
        times.append(time.perf_counter() - start)
    # Typically ~0.05 ms; the bound leaves room for a loaded CI machine.
    assert statistics.median(times) < 0.005


def test_image_size_64_gives_1x64x64_images(test64: FashionMNIST) -> None:
    img = test64[0]
    assert img.shape == (1, 64, 64)
    assert img.min() >= -1.0 and img.max() <= 1.0


def test_out_of_range_index_raises_index_error(train: FashionMNIST) -> None:
    with pytest.raises(IndexError):
        train[60000]
    with pytest.raises(IndexError):
        train.get_batch([0, 60000])


def test_train_and_test_fingerprints_differ(train: FashionMNIST, test64: FashionMNIST) -> None:
    test32 = FashionMNIST(REAL_FASHION_MNIST, split="test")
    assert train.fingerprint() != test32.fingerprint()
    assert test32.fingerprint().digest != test64.fingerprint().digest


def test_fingerprint_short_form_names_the_data(train: FashionMNIST) -> None:
    assert train.fingerprint().short().startswith("fashion-mnist/60000@32x1:")
