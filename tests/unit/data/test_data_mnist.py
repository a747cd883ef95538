"""MNIST on small generated IDX files: loading, padding, labels, fingerprint, finding, download."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from gf_data_helpers import write_fashion_mnist, write_mnist

from ganfriends.data import MNIST, FashionMNIST, download_mnist, find_mnist, make_dataset
from ganfriends.data import mnist as mnist_module
from ganfriends.data.idx_dataset import IDX_SPLIT_FILES
from ganfriends.errors import DatasetError


def _train_images(contents: dict[str, bytes], n: int) -> np.ndarray:
    return np.frombuffer(contents["train-images-idx3-ubyte"][16:], np.uint8).reshape(n, 28, 28)


def test_a_pixel_lands_at_its_position_plus_the_padding(tmp_path: Path) -> None:
    contents = write_mnist(tmp_path / "m", n_train=5)
    raw = _train_images(contents, 5)
    ds = MNIST(tmp_path / "m")
    img = ds[3]
    # Pixel (row 7, column 11) of the stored image is (9, 13) after 2 px of padding.
    assert img[0, 9, 13].item() == pytest.approx(raw[3, 7, 11] / 127.5 - 1.0)


def test_every_image_matches_its_file_in_file_order(tmp_path: Path) -> None:
    contents = write_mnist(tmp_path / "m", n_train=5)
    raw = torch.from_numpy(_train_images(contents, 5).astype(np.float32)) / 127.5 - 1.0
    batch, skipped = MNIST(tmp_path / "m").get_batch(range(5))
    assert skipped == 0
    assert torch.equal(batch[:, 0, 2:30, 2:30], raw)


def test_images_are_padded_to_32_with_background(tmp_path: Path) -> None:
    write_mnist(tmp_path / "m")
    batch, _ = MNIST(tmp_path / "m").get_batch(range(6))
    border = torch.ones(32, 32, dtype=torch.bool)
    border[2:30, 2:30] = False
    assert batch.shape == (6, 1, 32, 32)
    assert torch.all(batch[:, 0, border] == -1.0)


def test_labels_follow_the_image_order(tmp_path: Path) -> None:
    contents = write_mnist(tmp_path / "m", n_test=4)
    labels = MNIST(tmp_path / "m", split="test").labels()
    assert labels is not None
    assert labels.tolist() == list(contents["t10k-labels-idx1-ubyte"][8:])
    assert labels.dtype == np.int64


def test_mnist_has_ten_classes(tmp_path: Path) -> None:
    write_mnist(tmp_path / "m")
    assert MNIST(tmp_path / "m").num_classes() == 10


def test_the_fingerprint_is_the_same_for_a_copy_elsewhere(tmp_path: Path) -> None:
    write_mnist(tmp_path / "a")
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    assert MNIST(tmp_path / "a").fingerprint() == MNIST(tmp_path / "b").fingerprint()


def test_one_changed_pixel_changes_the_fingerprint(tmp_path: Path) -> None:
    contents = write_mnist(tmp_path / "a", gz=False)
    before = MNIST(tmp_path / "a").fingerprint()
    changed = bytearray(contents["train-images-idx3-ubyte"])
    changed[16 + 100] ^= 1  # one pixel of the first image, changed by one grey level
    (tmp_path / "a" / "train-images-idx3-ubyte").write_bytes(bytes(changed))
    after = MNIST(tmp_path / "a").fingerprint()
    assert after.digest != before.digest
    assert after.size == before.size


def test_the_same_files_as_fashion_mnist_fingerprint_differently(tmp_path: Path) -> None:
    write_fashion_mnist(tmp_path / "f")
    assert (
        MNIST(tmp_path / "f").fingerprint().digest
        != FashionMNIST(tmp_path / "f").fingerprint().digest
    )


def test_make_dataset_loads_mnist_from_a_path(tmp_path: Path) -> None:
    write_mnist(tmp_path / "m", n_test=3)
    ds = make_dataset("mnist", path=tmp_path / "m", split="test")
    assert (ds.name, len(ds), ds.image_size, ds.channels) == ("mnist", 3, 32, 1)
    assert ds.fingerprint().short().startswith("mnist/3@32x1:")


def test_another_image_size_resizes_the_padded_images(tmp_path: Path) -> None:
    write_mnist(tmp_path / "m")
    img = make_dataset("mnist", path=tmp_path / "m", image_size=64)[0]
    assert img is not None and img.shape == (1, 64, 64)


def test_the_data_dir_is_searched_before_cwd_data_mnist(tmp_path: Path) -> None:
    write_mnist(tmp_path / "data-dir" / "mnist", seed=1)  # the conftest's data dir
    write_mnist(Path.cwd() / "data" / "mnist", seed=2)
    assert find_mnist() == tmp_path / "data-dir" / "mnist"


def test_cwd_data_mnist_is_found_when_the_data_dir_lacks_it() -> None:
    write_mnist(Path.cwd() / "data" / "mnist")
    assert find_mnist() == Path.cwd() / "data" / "mnist"


def test_bare_cwd_data_is_not_taken_for_mnist() -> None:
    # Fashion-MNIST uses the same file names there: a bare ./data would be ambiguous.
    write_mnist(Path.cwd() / "data")
    assert find_mnist() is None


def test_an_explicit_path_without_the_files_names_it(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"MNIST files not found in .*empty"):
        find_mnist(tmp_path / "empty")


def test_every_file_has_a_pinned_sha256_of_its_decompressed_bytes() -> None:
    names = {n for pair in IDX_SPLIT_FILES.values() for n in pair}
    assert set(mnist_module.MNIST_SHA256) == names
    assert all(re.fullmatch(r"[0-9a-f]{64}", s) for s in mnist_module.MNIST_SHA256.values())


def test_the_pinned_checksums_refuse_files_that_are_not_mnist(
    tmp_path: Path, served_idx: tuple[str, dict[str, str]]
) -> None:
    url, _ = served_idx
    with pytest.raises(DatasetError, match="checksum mismatch"):
        download_mnist(tmp_path / "m", base_url=url, progress=False)
