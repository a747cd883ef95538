"""A zip whose directory promises no image file (a zip bomb) is refused before it is read."""

from __future__ import annotations

import io
import re
import struct
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from gf_data_helpers import jpeg_bytes, make_celeba_files, partition_txt
from PIL import Image

from ganfriends.data import open_celeba
from ganfriends.data.files import MAX_MEMBER_BYTES, _BoundedMember
from ganfriends.errors import DatasetError

PREFIX = "img_align_celeba/"


def celeba_zip(path: Path, extra: dict[str, int] | None = None) -> Path:
    """CelebA's 12 test images (deflated) plus, for each ``extra`` name, that many zero bytes."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in make_celeba_files().items():
            zf.writestr(PREFIX + name, data)
        for name, size in (extra or {}).items():
            with zf.open(name, "w", force_zip64=True) as member:
                for start in range(0, size, 1 << 20):
                    member.write(bytes(min(1 << 20, size - start)))
    return path


def spoil_data_of(path: Path, name: str) -> None:
    """Overwrite the compressed bytes of member ``name``: reading it now fails in zlib."""
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(name)
    raw = bytearray(path.read_bytes())
    at = info.header_offset  # the local header: 30 bytes, then the name and an extra field
    name_len, extra_len = struct.unpack("<HH", raw[at + 26 : at + 30])
    start = at + 30 + name_len + extra_len
    raw[start : start + info.compress_size] = b"\xff" * info.compress_size
    path.write_bytes(bytes(raw))


def test_a_member_larger_than_any_image_is_refused_without_being_read(tmp_path: Path) -> None:
    bomb = PREFIX + "000099.jpg"
    path = celeba_zip(tmp_path / "img_align_celeba.zip", {bomb: MAX_MEMBER_BYTES + (16 << 20)})
    assert path.stat().st_size < 200_000  # 80 MiB of zeros in ~80 KB
    spoil_data_of(path, bomb)  # were it read, zlib would fail first, with another message
    started = time.perf_counter()
    with pytest.raises(DatasetError) as refused:
        open_celeba(path)
    elapsed = time.perf_counter() - started
    assert str(refused.value) == (
        f"{path}:{bomb} declares 83,886,080 bytes, more than any image (64 MiB): "
        "this zip is not an image dataset"
    )
    assert elapsed < 0.5, elapsed  # milliseconds; reading it took seconds


def test_a_member_compressed_beyond_any_image_is_refused(tmp_path: Path) -> None:
    bomb = PREFIX + "000099.jpg"
    path = celeba_zip(tmp_path / "img_align_celeba.zip", {bomb: 2 << 20})  # 2 MiB: under the cap
    where = re.escape(f"{path}:{bomb}")
    with pytest.raises(DatasetError, match=rf"^{where} expands [\d,]+ bytes to 2,097,152, "):
        open_celeba(path)


def test_a_partition_file_bomb_is_refused(tmp_path: Path) -> None:
    path = celeba_zip(tmp_path / "img_align_celeba.zip", {"list_eval_partition.txt": 8 << 20})
    with pytest.raises(DatasetError, match=r"list_eval_partition\.txt expands"):
        open_celeba(path, split="valid")


def test_a_member_that_holds_more_than_it_declares_is_never_read_past_it(tmp_path: Path) -> None:
    # The directory says 1,000 bytes; the data inflates to 100,000 (a lying header).
    liar = PREFIX + "000001.jpg"
    path = tmp_path / "img_align_celeba.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(liar, bytes(100_000))
        zf.writestr(PREFIX + "000002.jpg", jpeg_bytes((1, 2, 3)))
    raw = bytearray(path.read_bytes())
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):  # local, central
        at = raw.index(signature)
        assert struct.unpack("<I", raw[at + offset : at + offset + 4]) == (100_000,)
        raw[at + offset : at + offset + 4] = struct.pack("<I", 1_000)
    path.write_bytes(bytes(raw))
    dataset = open_celeba(path)
    assert dataset[0] is None and dataset[1] is not None  # skipped, like any unreadable image
    with pytest.raises(DatasetError, match=r"000001\.jpg"):
        dataset.fingerprint()


def test_the_stream_bound_fails_past_the_declared_size() -> None:
    info = zipfile.ZipInfo("x.jpg")
    info.file_size = 3
    stream = io.BufferedReader(_BoundedMember(io.BytesIO(b"12345"), info))
    with pytest.raises(zipfile.BadZipFile, match="more than its declared 3"):
        stream.read()
    exact = io.BufferedReader(_BoundedMember(io.BytesIO(b"123"), info))
    assert exact.read() == b"123"


def test_a_deflated_zip_of_real_images_still_loads(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 256, (218, 178, 3), dtype=np.uint8))
    buf = io.BytesIO()
    noise.save(buf, format="JPEG", quality=95)
    path = tmp_path / "img_align_celeba.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name, data in make_celeba_files().items():  # one colour each: JPEG's most compressible
            zf.writestr(PREFIX + name, data)
        zf.writestr(PREFIX + "000013.jpg", buf.getvalue())
        zf.writestr("list_eval_partition.txt", partition_txt())
    dataset = open_celeba(path, split="all")
    assert len(dataset) == 13 and all(dataset[i] is not None for i in range(13))
    assert dataset.fingerprint().size == 13
    assert len(open_celeba(path, split="valid")) > 0
