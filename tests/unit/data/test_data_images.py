"""The shared image transform: resize the shorter side, center crop, scale to [-1, 1]."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from ganfriends.data import decode_image, image_to_tensor


def banded_portrait() -> Image.Image:
    """178x218 white, with 7-row red bands at top and bottom that the center crop must remove."""
    arr = np.full((218, 178, 3), 255, dtype=np.uint8)
    arr[:7] = arr[-7:] = (255, 0, 0)
    return Image.fromarray(arr)


def test_output_is_3x64x64_float32_in_unit_range() -> None:
    out = image_to_tensor(banded_portrait(), 64, 3)
    assert out.shape == (3, 64, 64)
    assert out.dtype == torch.float32
    assert out.min() >= -1.0 and out.max() <= 1.0


def test_black_and_white_map_exactly_to_minus_one_and_one() -> None:
    black = image_to_tensor(Image.new("RGB", (40, 40), (0, 0, 0)), 32, 3)
    white = image_to_tensor(Image.new("RGB", (40, 40), (255, 255, 255)), 32, 3)
    assert torch.all(black == -1.0) and torch.all(white == 1.0)


def test_the_center_crop_removes_the_top_and_bottom_of_a_portrait() -> None:
    out = image_to_tensor(banded_portrait(), 64, 3)
    assert torch.all(out == 1.0)  # no trace of the red bands


def test_the_transform_matches_torchvision_resize_then_center_crop() -> None:
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (218, 178, 3), np.uint8))
    # Resize(64): shorter side 178 -> 64, longer 218 -> int(64 * 218 / 178) = 78;
    # CenterCrop(64): top = round((78 - 64) / 2) = 7.
    ref = img.resize((64, 78), Image.Resampling.BILINEAR).crop((0, 7, 64, 71))
    expected = torch.from_numpy(np.asarray(ref).astype(np.float32)).permute(2, 0, 1) / 127.5 - 1
    assert torch.allclose(image_to_tensor(img, 64, 3), expected, atol=1e-6)


def test_a_landscape_image_is_cropped_left_and_right() -> None:
    arr = np.zeros((50, 100, 3), dtype=np.uint8)
    # White a few pixels beyond the central 50x50 square (the filter blends ~1.6 px), black outside.
    arr[:, 20:80] = 255
    out = image_to_tensor(Image.fromarray(arr), 32, 3)
    assert out.shape == (3, 32, 32)
    assert torch.all(out == 1.0)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK", "I;16"])
def test_any_pil_mode_becomes_rgb(mode: str) -> None:
    img = Image.new("RGB", (30, 20), (10, 200, 30)).convert(mode)
    assert image_to_tensor(img, 16, 3).shape == (3, 16, 16)


def test_one_channel_output_converts_to_grey() -> None:
    out = image_to_tensor(Image.new("RGB", (20, 20), (255, 255, 255)), 16, 1)
    assert out.shape == (1, 16, 16) and torch.all(out == 1.0)


def test_decode_image_reads_encoded_png_bytes() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (10, 12), (255, 255, 255)).save(buf, format="PNG")
    assert torch.all(decode_image(buf.getvalue(), 8, 3) == 1.0)


def test_decode_image_raises_on_garbage() -> None:
    with pytest.raises(OSError):
        decode_image(b"not an image at all", 8, 3)
