"""Downloading dataset files safely (temp file, verify, rename), and the CelebA download.

A download never leaves a partial or unverified file under its final name: a later run would
otherwise trust it. CelebA's official links need a login (Kaggle) or a confirmation page
(Google Drive), so ``download-celeba`` fetches the aligned zip from the mirror the seed project
uses (its Hugging Face repository), checks the official archive's MD5 (the one torchvision pins),
and resumes an interrupted download where it stopped; ``--url`` or ``$GANFRIENDS_CELEBA_URL``
name another source (then only its contents are checked: Kaggle's archive differs).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from ganfriends.data.files import find_zip_images
from ganfriends.errors import DatasetError

TIMEOUT_S = 15.0  # seconds, for the connection and for each read after it
CHUNK_BYTES = 1 << 20  # bytes read per step

CELEBA_URL_ENV = "GANFRIENDS_CELEBA_URL"
CELEBA_ZIP_NAME = "img_align_celeba.zip"
CELEBA_PAGE = "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"
CELEBA_KAGGLE_COMMAND = "kaggle datasets download -d jessicali9530/celeba-dataset"
# The seed project's copy (GANNs-with-friends downloads data/img_align_celeba.zip from it). Not
# fetched from CI (no internet there): tests serve a generated zip from 127.0.0.1 instead.
CELEBA_MIRROR = (
    "https://huggingface.co/gperdrizet/GANNs-with-friends/resolve/main/data/img_align_celeba.zip"
)
CELEBA_ZIP_MD5 = "00d2c5bc6d35e252742224ab0c1e8fcb"  # the official img_align_celeba.zip


class DownloadFailed(DatasetError):
    """A download did not complete; ``reason`` is a one-line cause for a caller's own message."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"could not download {url}: {reason}")


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        text = f"HTTP {exc.code} {exc.reason}"
    elif isinstance(exc, urllib.error.URLError):
        text = str(exc.reason)
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())


def fetch_url(
    url: str,
    dest: Path,
    *,
    verify: Callable[[Path], None] | None = None,
    timeout: float = TIMEOUT_S,
    progress: bool = True,
) -> Path:
    """Download ``url`` to ``dest`` via a temp file in the same folder, then rename it into place.

    ``verify(temp_path)`` may raise DatasetError to reject the content; the temp file is then
    deleted, as after any failure. Network failures raise :class:`DownloadFailed`.
    """
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    except OSError as exc:
        raise DownloadFailed(url, f"cannot write to {dest.parent}: {_one_line(exc)}") from None
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            request = urllib.request.Request(url, headers={"User-Agent": "ganfriends"})
            try:
                with urllib.request.urlopen(request, timeout=timeout) as response:
                    total = int(response.headers.get("Content-Length") or 0)
                    _copy(response, out, total, dest.name, show=progress)
            except (OSError, http.client.HTTPException, ValueError) as exc:
                # URLError, HTTPError and timeouts are OSErrors; a malformed URL is a ValueError.
                raise DownloadFailed(url, _one_line(exc)) from None
        if verify is not None:
            verify(tmp)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def fetch_resumable(
    url: str,
    dest: Path,
    *,
    verify: Callable[[Path], None] | None = None,
    timeout: float = TIMEOUT_S,
    progress: bool = True,
) -> Path:
    """Download ``url`` to ``dest`` through ``dest``'s ``.part`` file, which an interrupted
    download leaves behind: the next call asks only for the rest (an HTTP Range request) and
    starts over when the server sends the whole file instead. ``verify`` as in
    :func:`fetch_url`; content it rejects is deleted, partial file included.
    """
    part = dest.with_name(dest.name + ".part")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        have = part.stat().st_size if part.is_file() else 0
    except OSError as exc:
        raise DownloadFailed(url, f"cannot write to {dest.parent}: {_one_line(exc)}") from None
    headers = {"User-Agent": "ganfriends"} | ({"Range": f"bytes={have}-"} if have else {})
    try:
        request = urllib.request.Request(url, headers=headers)
        with urllib.request.urlopen(request, timeout=timeout) as response:
            resumed = have > 0 and response.status == 206
            total = int(response.headers.get("Content-Length") or 0) + (have if resumed else 0)
            if have and not resumed:
                print("the server does not resume downloads: starting over", file=sys.stderr)
            with part.open("ab" if resumed else "wb") as out:
                _copy(response, out, total, dest.name, show=progress)
            if total and part.stat().st_size < total:
                raise DownloadFailed(url, f"the connection ended after {part.stat().st_size:,} "
                                     f"of {total:,} bytes: run again to resume")  # fmt: skip
    except urllib.error.HTTPError as exc:
        if exc.code == 416:  # nothing left to send: the partial file is whole
            pass
        else:
            raise DownloadFailed(url, _one_line(exc)) from None
    except (OSError, http.client.HTTPException, ValueError) as exc:
        # URLError, HTTPError and timeouts are OSErrors; a malformed URL is a ValueError. The
        # partial file stays for the next attempt.
        raise DownloadFailed(url, f"{_one_line(exc)}; run again to resume") from None
    try:
        if verify is not None:
            verify(part)
    except DatasetError:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, dest)
    return dest


def md5_of(path: Path) -> str:
    """The MD5 hex digest of a file, read in chunks (the checksum CelebA's archive is known by)."""
    return _digest_of(path, hashlib.md5(usedforsecurity=False))


def sha256_of(path: Path) -> str:
    """The sha256 hex digest of a file, read in chunks."""
    return _digest_of(path, hashlib.sha256())


def _digest_of(path: Path, digest: hashlib._Hash) -> str:
    with path.open("rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def check_sha256(actual: str, expected: str, url: str, url_env: str) -> None:
    """DatasetError unless a download from ``url`` hashed as ``expected``; it names ``url_env``."""
    if actual != expected:
        raise DatasetError(
            f"checksum mismatch for {url} (sha256 {actual[:16]}..., expected "
            f"{expected[:16]}...): the file was not kept; check {url_env}"
        )


def _copy(src: IO[bytes], out: IO[bytes], total: int, label: str, *, show: bool) -> None:
    if show and sys.stderr.isatty():
        columns = (BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())
        with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task(label, total=total or None)
            while chunk := src.read(CHUNK_BYTES):
                out.write(chunk)
                bar.advance(task, len(chunk))
        return
    if show:
        size = f" ({total / 1e6:.1f} MB)" if total else ""
        print(f"downloading {label}{size} ...", file=sys.stderr, flush=True)
    while chunk := src.read(CHUNK_BYTES):
        out.write(chunk)


def celeba_manual_steps(dest: str | os.PathLike[str]) -> str:
    """How to get CelebA by hand, as a few lines for the CLI's help and messages."""
    target = Path(dest) / CELEBA_ZIP_NAME
    return (
        "To get CelebA (aligned & cropped, 202,599 images, about 1.4 GB):\n"
        f'  1. Download img_align_celeba.zip from {CELEBA_PAGE} (Google Drive, "Align&Cropped '
        'Images"),\n'
        f"     or from Kaggle: {CELEBA_KAGGLE_COMMAND}  (gives celeba-dataset.zip / archive.zip)\n"
        f"  2. Put it at {target} (Kaggle's zip works too, in the same folder); no need to unzip.\n"
        f"Or set {CELEBA_URL_ENV} to a direct download link and run `ganfriends download-celeba`."
    )


def _manual_steps_line(dest: Path) -> str:
    return (
        f'download img_align_celeba.zip from {CELEBA_PAGE} (Google Drive, "Align&Cropped Images") '
        f"or Kaggle (`{CELEBA_KAGGLE_COMMAND}`) and put it at {dest / CELEBA_ZIP_NAME} "
        "(no need to unzip)"
    )


def _verify_celeba_zip(url: str, md5: str | None = None) -> Callable[[Path], None]:
    def verify(path: Path) -> None:
        if md5 is not None and (found := md5_of(path)) != md5:
            raise DatasetError(
                f"checksum mismatch for {url}: MD5 {found}, the official img_align_celeba.zip "
                f"is {md5}; nothing was kept. {_manual_steps_line(path.parent)}"
            )
        try:
            with zipfile.ZipFile(path) as zf:
                _, names, _ = find_zip_images(zf.infolist(), (".jpg", ".jpeg"), url)
        except (zipfile.BadZipFile, OSError, EOFError):
            names = []
        if not names:
            raise DatasetError(
                f"{url} did not give a zip of CelebA .jpg images (a login or confirmation page?): "
                f"{_manual_steps_line(path.parent)}"
            )

    return verify


def download_celeba(
    dest: str | os.PathLike[str], *, url: str | None = None, progress: bool = True
) -> Path:
    """Download CelebA's zip to ``dest/img_align_celeba.zip`` (kept zipped) and return its path.

    From ``url``, else ``$GANFRIENDS_CELEBA_URL``, else the default mirror (:data:`CELEBA_MIRROR`,
    checked against the official archive's MD5). An interrupted download resumes on the next call;
    a failed one raises DatasetError with the manual steps. An existing valid zip is returned.
    """
    dest_dir = Path(dest).expanduser()
    target = dest_dir / CELEBA_ZIP_NAME
    if target.is_file() and zipfile.is_zipfile(target):
        return target
    url = url or os.environ.get(CELEBA_URL_ENV) or CELEBA_MIRROR
    md5 = CELEBA_ZIP_MD5 if url == CELEBA_MIRROR else None
    try:
        return fetch_resumable(url, target, verify=_verify_celeba_zip(url, md5), progress=progress)
    except DownloadFailed as exc:
        raise DatasetError(
            f"could not download CelebA from {url} ({exc.reason}): {_manual_steps_line(dest_dir)}"
        ) from None
