"""Image decoding shared by the file-backed datasets: bytes or PIL image -> tensor in [-1, 1].

The transform is the reference DCGAN one for CelebA (torchvision ``Resize(size)`` then
``CenterCrop(size)`` on a PIL image, then ``Normalize(0.5, 0.5)``), reimplemented with PIL so the
pixels match what the seed project trained on, without depending on torchvision.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import torch
from PIL import Image

# The file extensions (lower case) the folder dataset treats as images.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff")


def resize_shorter_side(img: Image.Image, size: int) -> Image.Image:
    """Scale ``img`` so its shorter side is ``size`` pixels, keeping the aspect ratio.

    The longer side is truncated, not rounded, exactly as torchvision's ``Resize(int)`` does.
    """
    w, h = img.size
    if w <= h:
        new_w, new_h = size, int(size * h / w)
    else:
        new_w, new_h = int(size * w / h), size
    if (new_w, new_h) == (w, h):
        return img
    # PIL's BILINEAR widens its filter when shrinking, i.e. it antialiases like torchvision on PIL.
    return img.resize((new_w, new_h), Image.Resampling.BILINEAR)


def center_crop(img: Image.Image, size: int) -> Image.Image:
    """The central ``size`` x ``size`` square of ``img`` (torchvision's rounding of the offsets)."""
    w, h = img.size
    if (w, h) == (size, size):
        return img
    left = round((w - size) / 2.0)
    top = round((h - size) / 2.0)
    return img.crop((left, top, left + size, top + size))


def to_tensor(img: Image.Image) -> torch.Tensor:
    """A PIL image in mode L or RGB as a ``(C, H, W)`` float32 tensor in [-1, 1]."""
    arr = np.asarray(img, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    # np.asarray of a PIL image is read-only; torch.from_numpy wants a writable array.
    t = torch.from_numpy(arr.transpose(2, 0, 1).copy())
    return uint8_to_unit_range(t)


def uint8_to_unit_range(t: torch.Tensor) -> torch.Tensor:
    """uint8 pixels [0, 255] as float32 [-1, 1]; 0 and 255 map exactly to -1 and 1."""
    return t.to(torch.float32).div_(127.5).sub_(1.0)


def image_to_tensor(img: Image.Image, image_size: int, channels: int) -> torch.Tensor:
    """The DCGAN transform: to L or RGB, resize shorter side, center crop, scale to [-1, 1]."""
    mode = "L" if channels == 1 else "RGB"
    if img.mode != mode:
        # Via RGBA, palette images with transparency convert without a PIL warning; the alpha is
        # then dropped, which gives the same colours as a direct convert("RGB").
        if img.mode in ("P", "PA", "LA") and mode == "RGB":
            img = img.convert("RGBA")
        img = img.convert(mode)
    img = center_crop(resize_shorter_side(img, image_size), image_size)
    return to_tensor(img)


def decode_image(data: bytes, image_size: int, channels: int) -> torch.Tensor:
    """Decode an encoded image (JPEG, PNG, ...) and apply :func:`image_to_tensor`.

    Raises whatever PIL raises for a bad file; callers that must survive corrupt files catch it.
    """
    with warnings.catch_warnings():
        # Odd but readable files (bad EXIF, big images, ...) make PIL warn; the image is still used.
        warnings.simplefilter("ignore")
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            return image_to_tensor(img, image_size, channels)
