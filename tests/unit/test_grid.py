from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganfriends.grid import make_grid, save_grid


def test_grid_size_with_padding() -> None:
    image = make_grid(torch.zeros(10, 3, 8, 8), nrow=4, padding=2)
    assert image.size == (2 + 4 * 10, 2 + 3 * 10)
    assert image.mode == "RGB"


def test_grey_images_make_a_grey_grid() -> None:
    assert make_grid(torch.zeros(4, 1, 8, 8)).mode == "L"


def test_pixel_values_map_minus_one_one_to_0_255() -> None:
    images = torch.stack([torch.full((1, 2, 2), -1.0), torch.full((1, 2, 2), 1.0)])
    pixels = np.asarray(make_grid(images, nrow=2, padding=0))
    assert pixels[:, :2].max() == 0 and pixels[:, 2:].min() == 255


def test_save_grid_writes_a_png(tmp_path: Path) -> None:
    path = save_grid(torch.rand(4, 3, 8, 8) * 2 - 1, tmp_path / "sub" / "grid.png")
    with Image.open(path) as image:
        assert image.format == "PNG"
    assert not list(tmp_path.glob("**/*.tmp"))


def test_grid_rejects_wrong_shapes() -> None:
    with pytest.raises(ValueError, match="expected"):
        make_grid(torch.zeros(3, 8, 8))
