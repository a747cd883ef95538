"""Folders of small generated images (Pillow), for the folder dataset's tests."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from PIL import Image


def write_images(root: Path, names: Iterable[str], size: int = 8) -> Path:
    """A PNG at each relative path of ``names`` under ``root``, each of its own colour (so no two
    files have the same bytes); returns ``root``."""
    for i, name in enumerate(names):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (size, size), (i * 37 % 256, i * 91 % 256, i * 53 % 256)).save(path)
    return root
