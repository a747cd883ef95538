"""Helpers shared by the data tests (imported by name: pytest puts this folder on sys.path)."""

from __future__ import annotations

import gzip
import hashlib
import io
import struct
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ganfriends.data import open_celeba
from ganfriends.data.files import FileDataset

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


def open_celeba_as(
    packaging: str,
    root: Path,
    files: dict[str, bytes],
    *,
    zip_name: str = "img_align_celeba.zip",
    prefix: str = "img_align_celeba/",
) -> FileDataset:
    """CelebA of ``files`` under ``root``: an extracted folder (``folder``), else ``zip_name``
    whose members start with ``prefix`` (Kaggle's archive.zip nests the folder twice)."""
    if packaging == "folder":
        return open_celeba(write_folder(root / "img_align_celeba", files))
    return open_celeba(write_zip(root / zip_name, {prefix + n: b for n, b in files.items()}))


def partition_txt(n: int = N_CELEBA) -> bytes:
    """Images 1-8 train (0), 9-10 valid (1), 11-12 test (2)."""
    codes = [0] * 8 + [1] * 2 + [2] * 2
    return "".join(f"{i + 1:06d}.jpg {codes[i]}\n" for i in range(n)).encode()


def partition_csv(n: int = N_CELEBA) -> bytes:
    return b"image_id,partition\n" + partition_txt(n).replace(b" ", b",")


def write_mnist(
    directory: Path, n_train: int = 6, n_test: int = 4, *, gz: bool = True, seed: int = 0
) -> dict[str, bytes]:
    """A small random MNIST: the same four file names and format as Fashion-MNIST's."""
    return write_fashion_mnist(directory, n_train, n_test, gz=gz, seed=seed)


CIFAR_RECORD_BYTES = 1 + 3 * 32 * 32
CIFAR_TRAIN_BATCHES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))


def cifar_batch(labels: np.ndarray, pixels: np.ndarray) -> bytes:
    """CIFAR-10 binary records: per image, its label byte then its (3, 32, 32) uint8 pixels."""
    records = np.concatenate([labels.reshape(-1, 1), pixels.reshape(len(labels), -1)], axis=1)
    return records.astype(np.uint8).tobytes()


def make_cifar10(n_per_batch: int = 3, n_test: int = 2, seed: int = 0) -> dict[str, bytes]:
    """{batch file name: bytes} of a small random CIFAR-10: five train batches and the test one."""
    rng = np.random.default_rng(seed)
    sizes = {**dict.fromkeys(CIFAR_TRAIN_BATCHES, n_per_batch), "test_batch.bin": n_test}
    return {
        name: cifar_batch(
            rng.integers(0, 10, size=(n,), dtype=np.uint8),
            rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8),
        )
        for name, n in sizes.items()
    }


def cifar_records(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(labels (N,), pixels (N, 3, 32, 32)) decoded from CIFAR-10 binary records."""
    records = np.frombuffer(data, np.uint8).reshape(-1, CIFAR_RECORD_BYTES)
    return records[:, 0], records[:, 1:].reshape(-1, 3, 32, 32)


def write_tar_gz(path: Path, members: dict[str, bytes]) -> Path:
    """A .tar.gz of ``members`` ({member name: bytes}) as regular files, names kept as given."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def write_cifar10_archive(path: Path, batches: dict[str, bytes]) -> Path:
    """``batches`` packed as cifar-10-binary.tar.gz packs them, under cifar-10-batches-bin/."""
    return write_tar_gz(path, {f"cifar-10-batches-bin/{n}": b for n, b in batches.items()})
