"""The generic folder dataset."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch
from gf_data_helpers import jpeg_bytes, write_folder
from PIL import Image

from ganfriends.data import FileDataset, make_dataset
from ganfriends.errors import DatasetError


def png_bytes(mode: str, colour: int | tuple[int, ...]) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (40, 30), colour).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def mixed_folder(tmp_path: Path) -> Path:
    return write_folder(
        tmp_path / "pics",
        {
            "b/z.PNG": png_bytes("L", 255),
            "a/a.jpg": jpeg_bytes((0, 0, 0), (50, 50)),
            "b/a.webp": b"",  # listed by extension, unreadable
            "c/deep/x.Jpeg": jpeg_bytes((255, 255, 255), (64, 80)),
            "d/rgba.png": png_bytes("RGBA", (255, 255, 255, 0)),
            "notes.txt": b"not an image",
            ".hidden/h.jpg": jpeg_bytes((1, 2, 3), (8, 8)),
            "._a.jpg": b"\0\5\26\7",
        },
    )


def test_images_are_found_recursively_and_sorted_by_relative_path(mixed_folder: Path) -> None:
    ds = make_dataset("folder", path=mixed_folder)
    assert isinstance(ds, FileDataset)
    assert ds.source.names == ["a/a.jpg", "b/a.webp", "b/z.PNG", "c/deep/x.Jpeg", "d/rgba.png"]


def test_every_mode_comes_out_rgb_at_64_pixels(mixed_folder: Path) -> None:
    ds = make_dataset("folder", path=mixed_folder)
    assert (ds.image_size, ds.channels, ds.name) == (64, 3, "folder")
    for i in (0, 2, 3, 4):
        img = ds[i]
        assert img is not None and img.shape == (3, 64, 64)
    white = ds[2]
    assert white is not None and torch.all(white == 1.0)  # white greyscale PNG


def test_image_size_is_configurable(mixed_folder: Path) -> None:
    img = make_dataset("folder", path=mixed_folder, image_size=32)[0]
    assert img is not None and img.shape == (3, 32, 32)


def test_a_missing_folder_raises_naming_it(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="nope does not exist"):
        make_dataset("folder", path=tmp_path / "nope")


def test_a_folder_without_images_raises_naming_it(tmp_path: Path) -> None:
    write_folder(tmp_path / "docs", {"a.txt": b"x"})
    with pytest.raises(DatasetError, match=r"no images in folder .*docs"):
        make_dataset("folder", path=tmp_path / "docs")


def test_a_file_instead_of_a_folder_raises(tmp_path: Path) -> None:
    (tmp_path / "one.jpg").write_bytes(jpeg_bytes((0, 0, 0), (8, 8)))
    with pytest.raises(DatasetError, match="is not a folder"):
        make_dataset("folder", path=tmp_path / "one.jpg")


def test_the_folder_dataset_has_no_named_splits(mixed_folder: Path) -> None:
    with pytest.raises(DatasetError, match="no 'test' split"):
        make_dataset("folder", path=mixed_folder, split="test")
