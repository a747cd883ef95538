"""Sample grids: a batch of images in [-1, 1] tiled into one PNG (Pillow, no torchvision)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def make_grid(images: torch.Tensor, nrow: int | None = None, padding: int = 2) -> Image.Image:
    """Tile (N, C, H, W) images in [-1, 1] into one picture, ``nrow`` per row (default ~square)."""
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"expected (N, 1|3, H, W) images, got shape {tuple(images.shape)}")
    n, c, h, w = images.shape
    nrow = nrow or max(1, math.ceil(math.sqrt(n)))
    ncol = math.ceil(n / nrow)
    # [-1, 1] -> [0, 255], rounding like torchvision's save_image (x * 255 + 0.5).
    pixels = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5 + 0.5).to(torch.uint8)
    canvas = np.zeros((padding + ncol * (h + padding), padding + nrow * (w + padding), c), np.uint8)
    for i in range(n):
        row, col = divmod(i, nrow)
        top, left = padding + row * (h + padding), padding + col * (w + padding)
        canvas[top : top + h, left : left + w] = pixels[i].permute(1, 2, 0).numpy()
    return Image.fromarray(canvas[:, :, 0] if c == 1 else canvas, mode="L" if c == 1 else "RGB")


def save_grid(images: torch.Tensor, path: str | os.PathLike[str], nrow: int | None = None) -> Path:
    """Write :func:`make_grid` of ``images`` as a PNG (atomically: never a half-written file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    make_grid(images, nrow).save(tmp, format="PNG")
    os.replace(tmp, path)
    return path
