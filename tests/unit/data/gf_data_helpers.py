"""Helpers shared by the data tests (imported by name: pytest puts this folder on sys.path)."""

from __future__ import annotations

import gzip
import hashlib
import io
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REAL_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
needs_real_fashion_mnist = pytest.mark.skipif(
    not (REAL_FASHION_MNIST / "train-images-idx3-ubyte.gz").is_file(),
    reason=f"Fashion-MNIST is not installed in {REAL_FASHION_MNIST} "
    "(sudo apt-get install dataset-fashion-mnist)",
)

CELEBA_W, CELEBA_H = 178, 218  # pixels, the aligned CelebA image size
N_CELEBA = 12


def idx_bytes(arr: np.ndarray) -> bytes:
    """``arr`` (uint8) encoded as an IDX file."""
    header = bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(np.uint8).tobytes()


def write_fashion_mnist(
    directory: Path, n_train: int = 6, n_test: int = 4, *, gz: bool = True, seed: int = 0
) -> dict[str, bytes]:
    """Write the four IDX files of a small random Fashion-MNIST; {base name: decompressed bytes}."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    contents: dict[str, bytes] = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=(n,), dtype=np.uint8)
        contents[f"{prefix}-images-idx3-ubyte"] = idx_bytes(images)
        contents[f"{prefix}-labels-idx1-ubyte"] = idx_bytes(labels)
    for name, data in contents.items():
        if gz:
            (directory / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (directory / name).write_bytes(data)
    return contents


def sha256s(contents: dict[str, bytes]) -> dict[str, str]:
    return {name: hashlib.sha256(data).hexdigest() for name, data in contents.items()}


def celeba_colour(i: int) -> tuple[int, int, int]:
    """A distinct solid colour for generated image ``i``."""
    return (20 * i % 256, 255 - 20 * i % 256, 37 * i % 256)


def jpeg_bytes(colour: tuple[int, int, int], size: tuple[int, int] = (CELEBA_W, CELEBA_H)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def make_celeba_files() -> dict[str, bytes]:
    """{"000001.jpg": JPEG bytes, ...}: 12 solid-colour 178x218 images."""
    return {f"{i + 1:06d}.jpg": jpeg_bytes(celeba_colour(i)) for i in range(N_CELEBA)}


def write_folder(directory: Path, files: dict[str, bytes]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_bytes(data)
    return directory


def write_zip(zip_path: Path, files: dict[str, bytes]) -> Path:
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(zip_path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return zip_path


def partition_txt(n: int = N_CELEBA) -> bytes:
    """Images 1-8 train (0), 9-10 valid (1), 11-12 test (2)."""
    codes = [0] * 8 + [1] * 2 + [2] * 2
    return "".join(f"{i + 1:06d}.jpg {codes[i]}\n" for i in range(n)).encode()


def partition_csv(n: int = N_CELEBA) -> bytes:
    return b"image_id,partition\n" + partition_txt(n).replace(b" ", b",")
