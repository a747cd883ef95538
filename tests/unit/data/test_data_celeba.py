"""CelebA from a folder or a zip (official and Kaggle layouts), on 12 generated JPEGs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from gf_data_helpers import (
    N_CELEBA,
    celeba_colour,
    partition_csv,
    partition_txt,
    write_folder,
    write_zip,
)

from ganfriends.data import make_dataset, open_celeba
from ganfriends.data.files import FileDataset
from ganfriends.errors import DatasetError


def kaggle_zip(path: Path, files: dict[str, bytes], *, partition: bool = True) -> Path:
    members = {f"img_align_celeba/img_align_celeba/{n}": b for n, b in files.items()}
    members["list_attr_celeba.csv"] = b"image_id,Smiling\n"
    if partition:
        members["list_eval_partition.csv"] = partition_csv()
    return write_zip(path, members)


def assert_in_colour_order(ds: FileDataset, offset: int = 0) -> None:
    for i in range(len(ds)):
        img = ds[i]
        assert img is not None
        expected = torch.tensor(celeba_colour(i + offset), dtype=torch.float32) / 127.5 - 1
        assert torch.allclose(img.mean(dim=(1, 2)), expected, atol=0.04), i


def test_the_image_folder_itself_gives_the_images_in_file_name_order(
    tmp_path: Path, celeba_files: dict[str, bytes]
) -> None:
    # Written in reverse so that creation order cannot pass for name order.
    folder = write_folder(tmp_path / "img_align_celeba", dict(reversed(celeba_files.items())))
    ds = open_celeba(folder)
    assert len(ds) == N_CELEBA
    assert_in_colour_order(ds)


def test_an_image_is_3x64x64_in_unit_range(tmp_path: Path, celeba_files: dict[str, bytes]) -> None:
    ds = open_celeba(write_folder(tmp_path / "img_align_celeba", celeba_files))
    img = ds[0]
    assert img is not None and img.shape == (3, 64, 64) and img.dtype == torch.float32
    assert img.min() >= -1.0 and img.max() <= 1.0


def test_a_parent_folder_holding_img_align_celeba_works(
    tmp_path: Path, celeba_files: dict[str, bytes]
) -> None:
    write_folder(tmp_path / "celeba" / "img_align_celeba", celeba_files)
    assert len(open_celeba(tmp_path / "celeba")) == N_CELEBA


def test_kaggles_nested_extracted_folder_works(
    tmp_path: Path, celeba_files: dict[str, bytes]
) -> None:
    write_folder(tmp_path / "celeba" / "img_align_celeba" / "img_align_celeba", celeba_files)
    assert_in_colour_order(open_celeba(tmp_path / "celeba"))
    assert len(open_celeba(tmp_path / "celeba" / "img_align_celeba")) == N_CELEBA


def test_the_official_zip_is_read_without_extracting(
    tmp_path: Path, celeba_files: dict[str, bytes]
) -> None:
    zip_path = write_zip(
        tmp_path / "img_align_celeba.zip",
        {f"img_align_celeba/{n}": b for n, b in reversed(celeba_files.items())},
    )
    ds = open_celeba(zip_path)
    assert len(ds) == N_CELEBA
    assert_in_colour_order(ds)
    assert not (tmp_path / "img_align_celeba").exists()


def test_kaggles_archive_zip_with_nested_folders_works(
    tmp_path: Path, celeba_files: dict[str, bytes]
) -> None:
    ds = open_celeba(kaggle_zip(tmp_path / "archive.zip", celeba_files))
    assert len(ds) == N_CELEBA
    assert_in_colour_order(ds)


@pytest.mark.parametrize("zip_name", ["img_align_celeba.zip", "archive.zip", "celeba-dataset.zip"])
def test_a_folder_holding_a_known_zip_name_works(
    tmp_path: Path, celeba_files: dict[str, bytes], zip_name: str
) -> None:
    kaggle_zip(tmp_path / "celeba" / zip_name, celeba_files)
    assert len(open_celeba(tmp_path / "celeba")) == N_CELEBA


def test_macos_metadata_entries_in_a_zip_are_ignored(
    tmp_path: Path, celeba_files: dict[str, bytes]
) -> None:
    members = {f"img_align_celeba/{n}": b for n, b in celeba_files.items()}
    members["__MACOSX/img_align_celeba/._000001.jpg"] = b"\0\5\26\7"
    members["img_align_celeba/._000002.jpg"] = b"\0\5\26\7"
    ds = open_celeba(write_zip(tmp_path / "img_align_celeba.zip", members))
    assert len(ds) == N_CELEBA


def test_folder_and_zip_give_identical_tensors_and_fingerprints(
    tmp_path: Path, celeba_files: dict[str, bytes]
) -> None:
    folder = open_celeba(write_folder(tmp_path / "img_align_celeba", celeba_files))
    zipped = open_celeba(kaggle_zip(tmp_path / "archive.zip", celeba_files))
    indices = list(range(N_CELEBA))
    assert torch.equal(folder.get_batch(indices)[0], zipped.get_batch(indices)[0])
    assert folder.fingerprint() == zipped.fingerprint()


def test_the_default_location_is_the_data_dirs_celeba_folder(
    tmp_path: Path, celeba_files: dict[str, bytes]
) -> None:
    kaggle_zip(tmp_path / "data-dir" / "celeba" / "archive.zip", celeba_files)
    assert len(make_dataset("celeba")) == N_CELEBA


def test_then_the_working_directorys_data_celeba_folder(celeba_files: dict[str, bytes]) -> None:
    write_folder(Path("data/celeba/img_align_celeba"), celeba_files)
    assert len(make_dataset("celeba")) == N_CELEBA


def test_make_dataset_celeba_defaults_to_64_pixels(
    tmp_path: Path, celeba_files: dict[str, bytes]
) -> None:
    ds = make_dataset("celeba", path=write_folder(tmp_path / "img", celeba_files))
    assert (ds.image_size, ds.channels, ds.name) == (64, 3, "celeba")


def test_image_size_32_gives_3x32x32(tmp_path: Path, celeba_files: dict[str, bytes]) -> None:
    ds = make_dataset("celeba", path=write_folder(tmp_path / "img", celeba_files), image_size=32)
    img = ds[3]
    assert img is not None and img.shape == (3, 32, 32)


def test_missing_celeba_says_how_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"CelebA not found at .*ganfriends download-celeba"):
        make_dataset("celeba", path=tmp_path / "nowhere")


def test_a_zip_that_is_not_a_zip_raises_dataset_error(tmp_path: Path) -> None:
    (tmp_path / "img_align_celeba.zip").write_bytes(b"<html>sign in</html>")
    with pytest.raises(DatasetError, match=r"cannot read .* as a zip"):
        open_celeba(tmp_path)


def test_a_zip_without_jpegs_raises_dataset_error(tmp_path: Path) -> None:
    write_zip(tmp_path / "archive.zip", {"readme.txt": b"hi"})
    with pytest.raises(DatasetError, match=r"no .jpg images"):
        open_celeba(tmp_path)


@pytest.mark.parametrize("layout", ["folder-txt", "zip-csv", "zip-with-txt-beside"])
def test_valid_and_test_splits_follow_list_eval_partition(
    tmp_path: Path, celeba_files: dict[str, bytes], layout: str
) -> None:
    if layout == "folder-txt":
        write_folder(tmp_path / "img_align_celeba", celeba_files)
        (tmp_path / "list_eval_partition.txt").write_bytes(partition_txt())
    elif layout == "zip-csv":
        kaggle_zip(tmp_path / "archive.zip", celeba_files)
    else:
        kaggle_zip(tmp_path / "img_align_celeba.zip", celeba_files, partition=False)
        (tmp_path / "list_eval_partition.txt").write_bytes(partition_txt())
    valid = open_celeba(tmp_path, split="valid")
    test = open_celeba(tmp_path, split="test")
    assert valid.source.names == ["000009.jpg", "000010.jpg"]
    assert test.source.names == ["000011.jpg", "000012.jpg"]
    assert_in_colour_order(test, offset=10)


def test_train_and_all_use_every_image_even_with_a_partition_file(
    tmp_path: Path, celeba_files: dict[str, bytes]
) -> None:
    kaggle_zip(tmp_path / "archive.zip", celeba_files)
    train = open_celeba(tmp_path, split="train")
    assert len(train) == len(open_celeba(tmp_path, split="all")) == N_CELEBA


def test_a_partition_split_without_the_partition_file_says_what_is_missing(
    tmp_path: Path, celeba_files: dict[str, bytes]
) -> None:
    write_folder(tmp_path / "img_align_celeba", celeba_files)
    with pytest.raises(DatasetError, match="needs list_eval_partition"):
        open_celeba(tmp_path, split="test")


def test_an_unknown_split_lists_the_choices(tmp_path: Path, celeba_files: dict[str, bytes]) -> None:
    write_folder(tmp_path / "img_align_celeba", celeba_files)
    with pytest.raises(DatasetError, match="choose one of train, all, valid, test"):
        open_celeba(tmp_path, split="validation")


def test_split_datasets_have_distinct_fingerprints(
    tmp_path: Path, celeba_files: dict[str, bytes]
) -> None:
    kaggle_zip(tmp_path / "archive.zip", celeba_files)
    prints = {open_celeba(tmp_path, split=s).fingerprint() for s in ("train", "valid", "test")}
    assert len(prints) == 3
