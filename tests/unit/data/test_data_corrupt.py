"""Corrupt images are skipped and counted, never raised, wherever they are read from."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import torch
from gf_data_helpers import N_CELEBA, open_celeba_as, write_folder, write_zip
from PIL import ImageFile

from ganfriends.data import BatchLoader, make_dataset, open_celeba
from ganfriends.data.files import FileDataset

BAD = ("000003.jpg", "000007.jpg")


@pytest.fixture(autouse=True)
def _strict_pil(monkeypatch: pytest.MonkeyPatch) -> None:
    # Truncated files must fail to decode, whatever another module set globally.
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", False)


@pytest.fixture
def damaged(celeba_files: dict[str, bytes]) -> dict[str, bytes]:
    files = dict(celeba_files)
    files[BAD[0]] = files[BAD[0]][: len(files[BAD[0]]) // 2]  # truncated JPEG
    files[BAD[1]] = bytes(range(256)) * 8  # random bytes named .jpg
    return files


@pytest.fixture(params=["folder", "zip"])
def damaged_dataset(
    request: pytest.FixtureRequest, tmp_path: Path, damaged: dict[str, bytes]
) -> FileDataset:
    return open_celeba_as(request.param, tmp_path, damaged)


def test_getitem_returns_none_for_a_truncated_jpeg(damaged_dataset: FileDataset) -> None:
    assert damaged_dataset[2] is None


def test_getitem_returns_none_for_random_bytes(damaged_dataset: FileDataset) -> None:
    assert damaged_dataset[6] is None


def test_get_batch_skips_and_counts_bad_images(damaged_dataset: FileDataset) -> None:
    images, skipped = damaged_dataset.get_batch(range(N_CELEBA))
    assert skipped == 2
    assert images.shape == (N_CELEBA - 2, 3, 64, 64)


def test_a_batch_of_only_bad_images_is_empty_not_an_error(damaged_dataset: FileDataset) -> None:
    images, skipped = damaged_dataset.get_batch([2, 6])
    assert images.shape == (0, 3, 64, 64) and skipped == 2


def test_a_file_deleted_after_listing_is_skipped(tmp_path: Path, damaged: dict[str, bytes]) -> None:
    ds = make_dataset("folder", path=write_folder(tmp_path / "pics", damaged))
    (tmp_path / "pics" / "000001.jpg").unlink()
    assert ds[0] is None


def test_a_corrupt_zip_member_is_skipped(tmp_path: Path, celeba_files: dict[str, bytes]) -> None:
    zip_path = write_zip(
        tmp_path / "img_align_celeba.zip",
        {f"img_align_celeba/{n}": b for n, b in celeba_files.items()},
    )
    with zipfile.ZipFile(zip_path) as zf:
        info = zf.getinfo("img_align_celeba/000002.jpg")
    # Members are stored uncompressed: zero some bytes of this one's data, after its local header.
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    data = bytearray(zip_path.read_bytes())
    data[start + 200 : start + 260] = bytes(60)
    zip_path.write_bytes(bytes(data))
    ds = open_celeba(zip_path)
    assert ds[1] is None  # CRC mismatch
    assert ds[0] is not None


@pytest.mark.parametrize("num_workers", [0, 2])
def test_batch_loader_skips_and_counts_bad_images(
    damaged_dataset: FileDataset, num_workers: int
) -> None:
    batches = [[0, 1, 2], [3, 4, 5, 6], [7, 8, 9, 10, 11]]
    out = list(BatchLoader(damaged_dataset, batches, num_workers=num_workers))
    assert [skipped for _, skipped in out] == [1, 1, 0]
    assert [images.shape[0] for images, _ in out] == [2, 3, 5]
    assert all(images.dtype == torch.float32 for images, _ in out)
