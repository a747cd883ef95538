"""Class labels through the dataset interface: Fashion-MNIST has them, file datasets do not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from gf_data_helpers import write_fashion_mnist, write_folder

from ganfriends.data import FashionMNIST, make_dataset, open_celeba


def test_fashion_mnist_labels_follow_the_image_order(tmp_path: Path) -> None:
    contents = write_fashion_mnist(tmp_path / "fm", n_test=4, seed=7)
    labels = FashionMNIST(tmp_path / "fm", split="test").labels()
    assert labels is not None
    assert labels.tolist() == list(contents["t10k-labels-idx1-ubyte"][8:])


def test_fashion_mnist_labels_are_int64_one_per_image(tmp_path: Path) -> None:
    write_fashion_mnist(tmp_path / "fm", n_train=6)
    labels = FashionMNIST(tmp_path / "fm").labels()
    assert labels is not None and labels.dtype == np.int64 and labels.shape == (6,)


def test_fashion_mnist_has_ten_classes(tmp_path: Path) -> None:
    write_fashion_mnist(tmp_path / "fm")
    assert FashionMNIST(tmp_path / "fm").num_classes() == 10


def test_changing_the_returned_labels_leaves_the_dataset_alone(tmp_path: Path) -> None:
    write_fashion_mnist(tmp_path / "fm")
    ds = FashionMNIST(tmp_path / "fm")
    first = ds.labels()
    assert first is not None
    expected = first.tolist()
    first[:] = 9
    again = ds.labels()
    assert again is not None and again.tolist() == expected


def test_a_folder_dataset_has_no_labels(tmp_path: Path, celeba_files: dict[str, bytes]) -> None:
    ds = make_dataset("folder", path=write_folder(tmp_path / "imgs", celeba_files))
    assert ds.labels() is None
    assert ds.num_classes() is None


def test_celeba_has_no_labels(tmp_path: Path, celeba_files: dict[str, bytes]) -> None:
    ds = open_celeba(write_folder(tmp_path / "img_align_celeba", celeba_files))
    assert ds.labels() is None
    assert ds.num_classes() is None
