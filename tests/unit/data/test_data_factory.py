"""make_dataset's dispatch and argument checks."""

from __future__ import annotations

from pathlib import Path

import pytest
from gf_data_helpers import write_fashion_mnist

from ganfriends.data import DATASET_NAMES, make_dataset
from ganfriends.errors import DatasetError


def test_dataset_names_are_the_five_supported_ones() -> None:
    assert DATASET_NAMES == ("fashion-mnist", "mnist", "cifar10", "celeba", "folder")


def test_an_unknown_name_lists_the_choices() -> None:
    with pytest.raises(
        DatasetError,
        match="unknown dataset 'svhn': choose one of fashion-mnist, mnist, cifar10, celeba, folder",
    ):
        make_dataset("svhn")


def test_folder_without_a_path_asks_for_dataset_path() -> None:
    with pytest.raises(DatasetError, match="--dataset-path DIR"):
        make_dataset("folder")


@pytest.mark.parametrize("size", [0, -32, 2.5, True])
def test_a_bad_image_size_is_rejected(size: object) -> None:
    with pytest.raises(DatasetError, match="image size"):
        make_dataset("folder", path=".", image_size=size)  # type: ignore[arg-type]  # on purpose


def test_fashion_mnist_defaults_to_32_pixels_and_one_channel(tmp_path: Path) -> None:
    write_fashion_mnist(tmp_path / "fm")
    ds = make_dataset("fashion-mnist", path=tmp_path / "fm")
    assert (ds.name, ds.image_size, ds.channels) == ("fashion-mnist", 32, 1)
    assert ds.in_memory


def test_fashion_mnist_honours_image_size_and_split(tmp_path: Path) -> None:
    write_fashion_mnist(tmp_path / "fm", n_test=3)
    ds = make_dataset("fashion-mnist", path=tmp_path / "fm", image_size=64, split="test")
    assert len(ds) == 3
    img = ds[0]
    assert img is not None and img.shape == (1, 64, 64)
