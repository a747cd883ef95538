"""CIFAR-10's binary version on small generated batches: folder, archive, checks, download."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from gf_data_helpers import (
    CIFAR_TRAIN_BATCHES,
    cifar_batch,
    cifar_records,
    make_cifar10,
    write_cifar10_archive,
    write_folder,
    write_tar_gz,
)

from ganfriends.data import CIFAR10, download_cifar10, find_cifar10, make_dataset
from ganfriends.data import cifar10 as cifar_module
from ganfriends.errors import DatasetError

FOLDER = "cifar-10-batches-bin"
ARCHIVE = "cifar-10-binary.tar.gz"


@pytest.fixture
def batches() -> dict[str, bytes]:
    """Five train batches of 3 images and a test batch of 2, random."""
    return make_cifar10(n_per_batch=3, n_test=2)


@pytest.fixture
def folder(tmp_path: Path, batches: dict[str, bytes]) -> Path:
    """The batches extracted, as ``<tmp>/c/cifar-10-batches-bin``."""
    return write_folder(tmp_path / "c" / FOLDER, batches)


def _unit(value: int) -> float:
    return value / 127.5 - 1.0


def test_the_planes_are_red_then_green_then_blue(tmp_path: Path) -> None:
    pixels = np.zeros((1, 3, 32, 32), np.uint8)
    pixels[0, 0], pixels[0, 1], pixels[0, 2] = 10, 20, 30  # R, G, B planes in record order
    write_folder(tmp_path / "c", {"test_batch.bin": cifar_batch(np.array([4]), pixels)})
    img = CIFAR10(tmp_path / "c", split="test")[0]
    assert [img[c, 5, 9].item() for c in range(3)] == pytest.approx(
        [_unit(v) for v in (10, 20, 30)]
    )


def test_a_pixel_lands_at_its_row_and_column(tmp_path: Path) -> None:
    pixels = np.zeros((2, 3, 32, 32), np.uint8)
    pixels[1, 1, 4, 7] = 255  # image 1, green, row 4, column 7
    write_folder(tmp_path / "c", {"test_batch.bin": cifar_batch(np.array([0, 1]), pixels)})
    img = CIFAR10(tmp_path / "c", split="test")[1]
    assert img[1, 4, 7].item() == 1.0
    assert int((img == 1.0).sum()) == 1


def test_train_images_follow_the_five_batches_in_order(
    folder: Path, batches: dict[str, bytes]
) -> None:
    expected = np.concatenate([cifar_records(batches[n])[1] for n in CIFAR_TRAIN_BATCHES])
    ds = CIFAR10(folder)
    batch, skipped = ds.get_batch(range(len(ds)))
    assert skipped == 0
    assert torch.equal(batch, torch.from_numpy(expected.astype(np.float32)) / 127.5 - 1.0)


def test_labels_follow_the_image_order(folder: Path, batches: dict[str, bytes]) -> None:
    expected = np.concatenate([cifar_records(batches[n])[0] for n in CIFAR_TRAIN_BATCHES])
    labels = CIFAR10(folder).labels()
    assert labels is not None and labels.dtype == np.int64
    assert labels.tolist() == expected.tolist()


def test_the_test_split_reads_only_the_test_batch(folder: Path, batches: dict[str, bytes]) -> None:
    ds = CIFAR10(folder, split="test")
    labels = ds.labels()
    assert len(ds) == 2
    assert (
        labels is not None
        and labels.tolist() == cifar_records(batches["test_batch.bin"])[0].tolist()
    )


def test_cifar10_has_ten_classes(folder: Path) -> None:
    assert CIFAR10(folder).num_classes() == 10


def test_the_archive_loads_the_same_images_as_the_folder(
    tmp_path: Path, folder: Path, batches: dict[str, bytes]
) -> None:
    packed = CIFAR10(write_cifar10_archive(tmp_path / ARCHIVE, batches))
    unpacked = CIFAR10(folder)
    assert torch.equal(packed.get_batch(range(15))[0], unpacked.get_batch(range(15))[0])
    assert packed.fingerprint() == unpacked.fingerprint()


def test_the_fingerprint_is_the_same_for_a_copy_elsewhere(tmp_path: Path, folder: Path) -> None:
    copy = shutil.copytree(folder, tmp_path / "elsewhere")
    assert CIFAR10(folder).fingerprint() == CIFAR10(copy).fingerprint()


def test_one_changed_pixel_changes_the_fingerprint(folder: Path) -> None:
    before = CIFAR10(folder).fingerprint()
    data = bytearray((folder / "data_batch_3.bin").read_bytes())
    data[1 + 500] ^= 1  # a pixel of the red plane of the first image of batch 3
    (folder / "data_batch_3.bin").write_bytes(bytes(data))
    assert CIFAR10(folder).fingerprint().digest != before.digest


def test_a_truncated_batch_is_refused_naming_it(folder: Path) -> None:
    data = (folder / "data_batch_2.bin").read_bytes()
    (folder / "data_batch_2.bin").write_bytes(data[:-100])
    with pytest.raises(DatasetError, match=r"data_batch_2\.bin is truncated or corrupt") as info:
        CIFAR10(folder)
    assert "\n" not in str(info.value)


def test_a_truncated_batch_inside_the_archive_is_refused(
    tmp_path: Path, batches: dict[str, bytes]
) -> None:
    batches["test_batch.bin"] = batches["test_batch.bin"][:-1]
    archive = write_cifar10_archive(tmp_path / ARCHIVE, batches)
    with pytest.raises(DatasetError, match=r"test_batch\.bin is truncated or corrupt"):
        CIFAR10(archive, split="test")


def test_a_label_byte_above_9_is_refused(tmp_path: Path) -> None:
    pixels = np.zeros((2, 3, 32, 32), np.uint8)
    write_folder(tmp_path / "c", {"test_batch.bin": cifar_batch(np.array([3, 11]), pixels)})
    with pytest.raises(DatasetError, match=r"labels outside 0\.\.9"):
        CIFAR10(tmp_path / "c", split="test")


def test_a_missing_train_batch_is_reported(tmp_path: Path, batches: dict[str, bytes]) -> None:
    del batches["data_batch_4.bin"]
    archive = write_cifar10_archive(tmp_path / ARCHIVE, batches)
    with pytest.raises(DatasetError, match=r"lacks cifar-10-batches-bin/data_batch_4\.bin"):
        CIFAR10(archive)


def test_an_archive_member_climbing_out_with_dotdot_is_refused(
    tmp_path: Path, batches: dict[str, bytes]
) -> None:
    members = {f"{FOLDER}/{n}": b for n, b in batches.items()}
    members["../../outside.bin"] = b"x"
    archive = write_tar_gz(tmp_path / ARCHIVE, members)
    with pytest.raises(DatasetError, match=r"unsafe path \('\.\./\.\./outside\.bin'\)"):
        CIFAR10(archive)
    assert not (tmp_path.parent / "outside.bin").exists()


def test_an_absolute_archive_member_is_refused(tmp_path: Path, batches: dict[str, bytes]) -> None:
    members = {f"{FOLDER}/{n}": b for n, b in batches.items()}
    members["/etc/cifar.bin"] = b"x"
    with pytest.raises(DatasetError, match="unsafe path"):
        CIFAR10(write_tar_gz(tmp_path / ARCHIVE, members))


def test_the_python_pickle_version_is_refused_pointing_at_the_binary_one(tmp_path: Path) -> None:
    archive = write_tar_gz(
        tmp_path / "cifar-10-python.tar.gz", {"cifar-10-batches-py/data_batch_1": b"x"}
    )
    with pytest.raises(DatasetError, match=r"python \(pickle\) version.*cifar-10-binary\.tar\.gz"):
        CIFAR10(archive)


def test_a_file_that_is_not_an_archive_is_refused(tmp_path: Path) -> None:
    (tmp_path / ARCHIVE).write_bytes(b"<html>not found</html>")
    with pytest.raises(DatasetError, match="cannot read"):
        CIFAR10(tmp_path / ARCHIVE)


def test_make_dataset_loads_cifar10_from_a_path(tmp_path: Path, folder: Path) -> None:
    ds = make_dataset("cifar10", path=tmp_path / "c", split="test")
    assert (ds.name, len(ds), ds.image_size, ds.channels) == ("cifar10", 2, 32, 3)
    assert ds.in_memory


def test_another_image_size_resizes_the_images(folder: Path) -> None:
    img = make_dataset("cifar10", path=folder, image_size=16)[0]
    assert img is not None and img.shape == (3, 16, 16)


def test_an_explicit_path_may_be_the_archive_itself(
    tmp_path: Path, batches: dict[str, bytes]
) -> None:
    archive = write_cifar10_archive(tmp_path / "downloads" / "cifar.tgz", batches)
    assert find_cifar10(archive) == archive


def test_an_explicit_folder_holding_the_archive_finds_it(
    tmp_path: Path, batches: dict[str, bytes]
) -> None:
    archive = write_cifar10_archive(tmp_path / "c" / ARCHIVE, batches)
    assert find_cifar10(tmp_path / "c") == archive


def test_the_extracted_folder_is_preferred_to_the_archive(
    tmp_path: Path, folder: Path, batches: dict[str, bytes]
) -> None:
    write_cifar10_archive(tmp_path / "c" / ARCHIVE, batches)
    assert find_cifar10(tmp_path / "c") == folder


def test_an_explicit_path_without_cifar10_names_it(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"CIFAR-10 not found in .*empty"):
        find_cifar10(tmp_path / "empty")


def test_the_data_dir_is_searched_before_cwd_data(
    tmp_path: Path, batches: dict[str, bytes]
) -> None:
    write_cifar10_archive(tmp_path / "data-dir" / "cifar10" / ARCHIVE, batches)  # the conftest's
    write_cifar10_archive(Path.cwd() / "data" / "cifar10" / ARCHIVE, batches)
    assert find_cifar10() == tmp_path / "data-dir" / "cifar10" / ARCHIVE


@pytest.fixture
def served_archive(http_root: tuple[Path, str], batches: dict[str, bytes]) -> tuple[str, str]:
    """The generated archive on the local server: (its URL, its sha256)."""
    root, url = http_root
    archive = write_cifar10_archive(root / ARCHIVE, batches)
    return url + ARCHIVE, hashlib.sha256(archive.read_bytes()).hexdigest()


def test_download_keeps_the_verified_archive_packed(
    tmp_path: Path, served_archive: tuple[str, str]
) -> None:
    url, sha = served_archive
    path = download_cifar10(tmp_path / "c", url=url, sha256=sha, progress=False)
    assert path == tmp_path / "c" / ARCHIVE
    assert len(CIFAR10(path)) == 15


def test_a_download_with_a_checksum_mismatch_is_refused_and_not_kept(
    tmp_path: Path, served_archive: tuple[str, str]
) -> None:
    url, _ = served_archive
    with pytest.raises(DatasetError, match=r"checksum mismatch.*GANFRIENDS_CIFAR10_URL"):
        download_cifar10(tmp_path / "c", url=url, sha256="0" * 64, progress=False)
    assert not list((tmp_path / "c").iterdir())


def test_the_pinned_checksum_refuses_an_archive_that_is_not_the_real_one(
    tmp_path: Path, served_archive: tuple[str, str]
) -> None:
    url, _ = served_archive
    with pytest.raises(DatasetError, match="checksum mismatch"):
        download_cifar10(tmp_path / "c", url=url, progress=False)


def test_make_dataset_downloads_from_the_url_in_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, served_archive: tuple[str, str]
) -> None:
    url, sha = served_archive
    monkeypatch.setenv("GANFRIENDS_CIFAR10_URL", url)
    monkeypatch.setattr(cifar_module, "CIFAR10_SHA256", sha)
    ds = make_dataset("cifar10", split="test", data_dir=tmp_path / "dd")
    assert len(ds) == 2
    assert (tmp_path / "dd" / "cifar10" / ARCHIVE).is_file()


def test_make_dataset_reports_a_bad_checksum_in_one_line(
    monkeypatch: pytest.MonkeyPatch, served_archive: tuple[str, str]
) -> None:
    url, _ = served_archive
    monkeypatch.setenv("GANFRIENDS_CIFAR10_URL", url)
    with pytest.raises(DatasetError, match=r"could not be downloaded \(checksum mismatch") as info:
        make_dataset("cifar10")
    assert "\n" not in str(info.value)
