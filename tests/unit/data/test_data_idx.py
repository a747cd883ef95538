from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
from gf_data_helpers import idx_bytes

from ganfriends.data import read_idx
from ganfriends.errors import DatasetError


@pytest.fixture
def images() -> np.ndarray:
    return np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)


def test_read_idx_reads_a_raw_file(tmp_path: Path, images: np.ndarray) -> None:
    path = tmp_path / "x-idx3-ubyte"
    path.write_bytes(idx_bytes(images))
    out = read_idx(path)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, images)


def test_read_idx_reads_a_gzipped_file(tmp_path: Path, images: np.ndarray) -> None:
    path = tmp_path / "x-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(images)))
    np.testing.assert_array_equal(read_idx(path), images)


def test_read_idx_returns_a_writable_array(tmp_path: Path, images: np.ndarray) -> None:
    path = tmp_path / "x"
    path.write_bytes(idx_bytes(images))
    assert read_idx(path).flags.writeable


def test_read_idx_decodes_big_endian_int32(tmp_path: Path) -> None:
    values = np.array([1, -2, 70000], dtype=">i4")
    path = tmp_path / "ints"
    path.write_bytes(bytes([0, 0, 0x0C, 1]) + struct.pack(">I", 3) + values.tobytes())
    assert read_idx(path).tolist() == [1, -2, 70000]


def test_read_idx_rejects_a_bad_magic_naming_the_file(tmp_path: Path, images: np.ndarray) -> None:
    path = tmp_path / "bad-magic"
    path.write_bytes(b"\x01\x00" + idx_bytes(images)[2:])
    with pytest.raises(DatasetError, match=r"bad-magic.*not an IDX file"):
        read_idx(path)


def test_read_idx_rejects_an_unknown_type_code(tmp_path: Path, images: np.ndarray) -> None:
    data = bytearray(idx_bytes(images))
    data[2] = 0x42
    path = tmp_path / "odd-type"
    path.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match="not an IDX file"):
        read_idx(path)


def test_read_idx_rejects_a_truncated_payload(tmp_path: Path, images: np.ndarray) -> None:
    path = tmp_path / "short.gz"
    path.write_bytes(gzip.compress(idx_bytes(images)[:-7]))
    with pytest.raises(DatasetError, match=r"short\.gz is truncated"):
        read_idx(path)


def test_read_idx_rejects_a_truncated_header(tmp_path: Path) -> None:
    path = tmp_path / "header"
    path.write_bytes(bytes([0, 0, 0x08, 3, 0, 0]))
    with pytest.raises(DatasetError, match="header"):
        read_idx(path)


def test_read_idx_rejects_a_truncated_gzip_stream(tmp_path: Path, images: np.ndarray) -> None:
    path = tmp_path / "cut.gz"
    path.write_bytes(gzip.compress(idx_bytes(images))[:-10])
    with pytest.raises(DatasetError, match=r"cut\.gz"):
        read_idx(path)


def test_read_idx_of_a_missing_file_raises_dataset_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="nothing-here"):
        read_idx(tmp_path / "nothing-here")
