"""Folder/CelebA fingerprints cover every file's bytes; per-file digests are cached on disk."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest
from gf_data_helpers import write_folder, write_zip

from ganfriends.data import fingerprint_mismatch, make_dataset, open_celeba
from ganfriends.data.digests import CACHE_FORMAT, default_cache_dir
from ganfriends.errors import DatasetError


@pytest.fixture
def folder(tmp_path: Path, celeba_files: dict[str, bytes]) -> Path:
    return write_folder(tmp_path / "one" / "img_align_celeba", celeba_files)


def _flip_a_byte(path: Path, offset: int = 100) -> None:
    """Same name, same size, one byte different, and a new modification time."""
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    stat = path.stat()
    path.write_bytes(bytes(data))
    # A distinct mtime, as any real rewrite a second later has (the cache is keyed by it).
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def _zip_of(folder: Path, zip_path: Path) -> Path:
    files = {f"img_align_celeba/{p.name}": p.read_bytes() for p in sorted(folder.iterdir())}
    return write_zip(zip_path, files)


def test_one_changed_byte_changes_the_folder_fingerprint(folder: Path, tmp_path: Path) -> None:
    before = open_celeba(folder).fingerprint()
    _flip_a_byte(folder / "000005.jpg")
    after = open_celeba(folder).fingerprint()
    assert after.size == before.size and after.digest != before.digest


def test_one_changed_byte_changes_the_zip_fingerprint(folder: Path, tmp_path: Path) -> None:
    good = open_celeba(_zip_of(folder, tmp_path / "good" / "img_align_celeba.zip")).fingerprint()
    _flip_a_byte(folder / "000005.jpg")
    bad = open_celeba(_zip_of(folder, tmp_path / "bad" / "img_align_celeba.zip")).fingerprint()
    assert bad.size == good.size and bad.digest != good.digest


def test_a_folder_and_a_deflated_zip_of_the_same_bytes_agree(folder: Path, tmp_path: Path) -> None:
    zip_path = tmp_path / "z" / "img_align_celeba.zip"
    zip_path.parent.mkdir()
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(folder.iterdir()):
            zf.write(p, f"img_align_celeba/{p.name}")
    assert open_celeba(zip_path).fingerprint() == open_celeba(folder).fingerprint()


def test_the_generic_folder_dataset_covers_contents_too(folder: Path) -> None:
    before = make_dataset("folder", path=folder).fingerprint()
    _flip_a_byte(folder / "000012.jpg")
    assert make_dataset("folder", path=folder).fingerprint() != before


def test_the_first_fingerprint_caches_every_files_digest(folder: Path) -> None:
    open_celeba(folder).fingerprint()
    (cache,) = default_cache_dir().iterdir()
    lines = cache.read_text().splitlines()
    assert lines[0] == f"{CACHE_FORMAT}\tdir\t{folder.resolve()}"
    assert sorted(line.split("\t")[0] for line in lines[1:]) == sorted(os.listdir(folder))


def test_a_cached_digest_is_used_while_the_files_stamp_is_unchanged(folder: Path) -> None:
    cold = open_celeba(folder).fingerprint()
    (cache,) = default_cache_dir().iterdir()
    # Planting another digest for an unchanged file shows the second open reads the cache.
    text = cache.read_text()
    digest = text.splitlines()[1].split("\t")[3]
    cache.write_text(text.replace(digest, "0" * 64))
    assert open_celeba(folder).fingerprint().digest != cold.digest


def test_a_changed_file_is_hashed_again_despite_the_cache(folder: Path) -> None:
    open_celeba(folder).fingerprint()  # warm the cache
    _flip_a_byte(folder / "000003.jpg")
    warm = open_celeba(folder).fingerprint()
    cold = open_celeba(folder, data_dir=folder.parent / "fresh-data-dir").fingerprint()
    assert warm == cold


def test_a_damaged_cache_is_a_miss_not_an_error(folder: Path) -> None:
    cold = open_celeba(folder).fingerprint()
    (cache,) = default_cache_dir().iterdir()
    cache.write_bytes(b"\xff\xfe garbage")
    assert open_celeba(folder).fingerprint() == cold
    cache.write_text(f"{CACHE_FORMAT}\tdir\t{folder.resolve()}\nnot\ta line\n")
    assert open_celeba(folder).fingerprint() == cold


def test_an_unwritable_cache_still_gives_the_fingerprint(folder: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "data-is-a-file"
    blocker.write_text("not a directory")
    expected = open_celeba(folder).fingerprint()
    assert open_celeba(folder, data_dir=blocker).fingerprint() == expected


def test_a_zip_rewritten_with_a_damaged_member_is_hashed_again(
    folder: Path, tmp_path: Path
) -> None:
    zip_path = _zip_of(folder, tmp_path / "z" / "img_align_celeba.zip")
    good = open_celeba(zip_path).fingerprint()
    _flip_a_byte(folder / "000007.jpg")
    _zip_of(folder, zip_path)  # same path, same member names and sizes
    assert open_celeba(zip_path).fingerprint() != good


def test_a_zip_member_that_fails_its_crc_is_named_in_a_dataset_error(
    folder: Path, tmp_path: Path
) -> None:
    zip_path = _zip_of(folder, tmp_path / "z" / "img_align_celeba.zip")
    with zipfile.ZipFile(zip_path) as zf:
        info = zf.getinfo("img_align_celeba/000002.jpg")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    data = bytearray(zip_path.read_bytes())
    data[start + 200 : start + 260] = bytes(60)  # stored member: its bytes, not the CRC
    zip_path.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match=r"000002\.jpg .*damaged"):
        open_celeba(zip_path).fingerprint()


def test_a_file_that_does_not_decode_is_still_fingerprinted_by_its_bytes(
    folder: Path, tmp_path: Path
) -> None:
    (folder / "000004.jpg").write_bytes(b"not a jpeg, " * 50)
    one = open_celeba(folder).fingerprint()
    (folder / "000004.jpg").write_bytes(b"NOT A JPEG, " * 50)
    os.utime(folder / "000004.jpg", ns=(0, 1_000_000_000))
    assert open_celeba(folder).fingerprint().digest != one.digest


def test_a_run_of_the_names_and_sizes_era_gets_a_clear_line(folder: Path) -> None:
    ds = open_celeba(folder)
    old_run = ds.fingerprint().to_dict() | {"digest": ds.legacy_digests()[0]}
    reason = fingerprint_mismatch(ds, old_run)
    assert reason is not None and "older ganfriends" in reason and "--new-run" in reason


def test_other_files_are_called_other_data_not_an_old_run(folder: Path, tmp_path: Path) -> None:
    ds = open_celeba(folder)
    copy = write_folder(tmp_path / "copy" / "img_align_celeba", {})
    for p in folder.iterdir():
        (copy / p.name).write_bytes(p.read_bytes())
    _flip_a_byte(copy / "000001.jpg")
    theirs = open_celeba(copy).fingerprint()
    reason = fingerprint_mismatch(ds, theirs.to_dict())
    assert reason == f"this dataset {ds.fingerprint().short()} is not the run's {theirs.short()}"
    assert fingerprint_mismatch(ds, ds.fingerprint().to_dict()) is None


def test_a_malformed_stored_fingerprint_is_one_line_not_a_crash(folder: Path) -> None:
    reason = fingerprint_mismatch(open_celeba(folder), {"name": "celeba", "size": "12"})
    assert reason is not None and "unusable" in reason and "\n" not in reason


def test_a_large_first_hash_announces_itself_once_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from ganfriends.data import digests

    monkeypatch.setattr(digests, "PROGRESS_MIN_FILES", 5)
    folder = write_folder(tmp_path / "img_align_celeba", {f"{i:06d}.jpg": b"x" for i in range(6)})
    open_celeba(folder).fingerprint()
    open_celeba(folder).fingerprint()  # cached: silent
    assert capsys.readouterr().err.count("hashing 6 files of") == 1
