"""``download-celeba``'s default mirror, checksum and resume, through a real HTTP server on
127.0.0.1 that honours Range requests and can cut a response short (the live mirror is never
contacted from the tests)."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from gf_data_helpers import write_zip

from ganfriends.data import download as dl
from ganfriends.data import download_celeba, open_celeba
from ganfriends.errors import DatasetError


@dataclass
class Mirror:
    """What the server serves and what it saw."""

    body: bytes = b""
    cut_after: int | None = None  # end the next response after this many bytes, once
    ranges: list[str | None] = field(default_factory=list)  # the Range header of each request
    url: str = ""


@pytest.fixture
def mirror(tmp_path: Path, celeba_files: dict[str, bytes]) -> Iterator[Mirror]:
    zip_path = tmp_path / "served.zip"
    write_zip(zip_path, {f"img_align_celeba/{n}": b for n, b in celeba_files.items()})
    state = Mirror(body=zip_path.read_bytes())

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            header = self.headers.get("Range")
            state.ranges.append(header)
            start = int(header.removeprefix("bytes=").rstrip("-")) if header else 0
            body = state.body[start:]
            self.send_response(206 if header else 200)
            self.send_header("Content-Length", str(len(body)))
            if header:
                end = len(state.body) - 1
                self.send_header("Content-Range", f"bytes {start}-{end}/{len(state.body)}")
            self.end_headers()
            if state.cut_after is not None:
                body, state.cut_after = body[: state.cut_after], None
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/data/img_align_celeba.zip"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def as_default(mirror: Mirror, monkeypatch: pytest.MonkeyPatch) -> Mirror:
    """The served zip stands in for the default mirror, with its own MD5 pinned."""
    monkeypatch.delenv("GANFRIENDS_CELEBA_URL", raising=False)
    monkeypatch.setattr(dl, "CELEBA_MIRROR", mirror.url)
    monkeypatch.setattr(dl, "CELEBA_ZIP_MD5", hashlib.md5(mirror.body).hexdigest())
    return mirror


def test_with_no_url_the_default_mirror_is_fetched_and_checked(
    tmp_path: Path, as_default: Mirror, celeba_files: dict[str, bytes]
) -> None:
    path = download_celeba(tmp_path / "celeba", progress=False)
    assert path.read_bytes() == as_default.body
    assert len(open_celeba(tmp_path / "celeba")) == len(celeba_files)


def test_a_download_cut_short_resumes_where_it_stopped(tmp_path: Path, as_default: Mirror) -> None:
    as_default.cut_after = 1000
    with pytest.raises(DatasetError, match="run again to resume") as info:
        download_celeba(tmp_path / "celeba", progress=False)
    assert "\n" not in str(info.value)
    part = tmp_path / "celeba" / "img_align_celeba.zip.part"
    assert part.stat().st_size == 1000

    path = download_celeba(tmp_path / "celeba", progress=False)

    assert as_default.ranges == [None, "bytes=1000-"]
    assert path.read_bytes() == as_default.body
    assert not part.exists()


def test_a_corrupted_download_fails_its_checksum_and_keeps_nothing(
    tmp_path: Path, as_default: Mirror
) -> None:
    as_default.body = as_default.body[:-10] + b"x" * 10
    with pytest.raises(DatasetError, match="checksum mismatch"):
        download_celeba(tmp_path / "celeba", progress=False)
    assert not list((tmp_path / "celeba").iterdir())


def test_the_pinned_checksum_is_the_official_archives() -> None:
    # torchvision's CelebA file list pins the same MD5 for img_align_celeba.zip.
    assert dl.CELEBA_ZIP_MD5 == "00d2c5bc6d35e252742224ab0c1e8fcb"
    assert dl.CELEBA_MIRROR.startswith("https://huggingface.co/")


def test_a_url_of_ones_own_is_checked_for_images_not_for_the_official_checksum(
    tmp_path: Path, mirror: Mirror, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Kaggle's archive is another zip of the same JPEGs: its checksum differs.
    monkeypatch.setattr(dl, "CELEBA_ZIP_MD5", "0" * 32)
    path = download_celeba(tmp_path / "celeba", url=mirror.url, progress=False)
    assert path.read_bytes() == mirror.body
