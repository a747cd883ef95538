"""Fingerprints: equal for the same data anywhere, different for any other data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from gf_data_helpers import write_fashion_mnist, write_folder

from ganfriends.data import DatasetFingerprint, FashionMNIST, make_dataset, open_celeba
from ganfriends.errors import DatasetError


@pytest.fixture
def folder(tmp_path: Path, celeba_files: dict[str, bytes]) -> Path:
    return write_folder(tmp_path / "one" / "img_align_celeba", celeba_files)


def test_the_same_files_at_two_paths_have_the_same_fingerprint(
    folder: Path, tmp_path: Path
) -> None:
    copy = shutil.copytree(folder, tmp_path / "elsewhere" / "faces")
    assert open_celeba(folder).fingerprint() == open_celeba(copy).fingerprint()


def test_an_added_file_changes_the_fingerprint(folder: Path) -> None:
    before = open_celeba(folder).fingerprint()
    shutil.copy(folder / "000001.jpg", folder / "000013.jpg")
    after = open_celeba(folder).fingerprint()
    assert before.digest != after.digest and after.size == before.size + 1


def test_a_renamed_file_changes_the_fingerprint(folder: Path) -> None:
    before = open_celeba(folder).fingerprint()
    (folder / "000012.jpg").rename(folder / "000099.jpg")
    assert open_celeba(folder).fingerprint() != before


def test_a_file_of_another_size_changes_the_fingerprint(folder: Path) -> None:
    before = open_celeba(folder).fingerprint()
    with (folder / "000005.jpg").open("ab") as f:
        f.write(b"\0")
    assert open_celeba(folder).fingerprint() != before


def test_another_image_size_changes_the_digest(folder: Path) -> None:
    a = open_celeba(folder, image_size=64).fingerprint()
    b = open_celeba(folder, image_size=32).fingerprint()
    assert a.digest != b.digest


def test_the_same_files_as_another_dataset_kind_differ(folder: Path) -> None:
    celeba = open_celeba(folder).fingerprint()
    generic = make_dataset("folder", path=folder).fingerprint()
    assert celeba.digest != generic.digest


def test_different_fashion_mnist_files_differ(tmp_path: Path) -> None:
    write_fashion_mnist(tmp_path / "a", seed=1)
    write_fashion_mnist(tmp_path / "b", seed=2)
    assert FashionMNIST(tmp_path / "a").fingerprint() != FashionMNIST(tmp_path / "b").fingerprint()


def test_fashion_mnist_at_two_paths_has_the_same_fingerprint(tmp_path: Path) -> None:
    write_fashion_mnist(tmp_path / "a", seed=1)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    assert FashionMNIST(tmp_path / "a").fingerprint() == FashionMNIST(tmp_path / "b").fingerprint()


def test_fingerprint_survives_a_json_round_trip(folder: Path) -> None:
    fp = open_celeba(folder).fingerprint()
    assert DatasetFingerprint.from_dict(json.loads(json.dumps(fp.to_dict()))) == fp


def test_from_dict_rejects_a_malformed_fingerprint() -> None:
    good = DatasetFingerprint("celeba", 3, 64, 3, "ab" * 32).to_dict()
    with pytest.raises(DatasetError, match="'size'"):
        DatasetFingerprint.from_dict({**good, "size": "3"})
    with pytest.raises(DatasetError, match="'digest'"):
        DatasetFingerprint.from_dict({k: v for k, v in good.items() if k != "digest"})


def test_short_form_shows_name_size_shape_and_digest_prefix() -> None:
    fp = DatasetFingerprint("fashion-mnist", 60000, 32, 1, "ab12cd34" + "0" * 56)
    assert fp.short() == "fashion-mnist/60000@32x1:ab12cd34"
