"""Fixtures for the data tests: an isolated working directory and data dir, a local HTTP server.

Every test runs in an empty working directory with a private data dir, so neither ./data nor the
user's ~/.local/share/ganfriends can leak in; nothing here touches the network beyond 127.0.0.1.
"""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from gf_data_helpers import make_celeba_files, sha256s, write_mnist

from ganfriends.data import fashion_mnist


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("GANFRIENDS_DATA_DIR", str(tmp_path / "data-dir"))
    monkeypatch.delenv("GANFRIENDS_FASHION_MNIST_URL", raising=False)
    monkeypatch.delenv("GANFRIENDS_MNIST_URL", raising=False)
    monkeypatch.delenv("GANFRIENDS_CIFAR10_URL", raising=False)
    monkeypatch.delenv("GANFRIENDS_CELEBA_URL", raising=False)


@pytest.fixture
def no_system_fashion_mnist(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the system-wide Fashion-MNIST copy invisible."""
    monkeypatch.setattr(fashion_mnist.FASHION_MNIST_HOME, "system_dirs", ())


@pytest.fixture
def served_idx(http_root: tuple[Path, str]) -> tuple[str, dict[str, str]]:
    """Four generated .gz IDX files (7 train, 3 test images) on the local server: (base URL,
    their decompressed sha256s). MNIST and Fashion-MNIST share the format and file names."""
    root, url = http_root
    return url, sha256s(write_mnist(root, n_train=7, n_test=3))


@pytest.fixture(scope="session")
def celeba_files() -> dict[str, bytes]:
    """{"000001.jpg": JPEG bytes, ...}: 12 solid-colour 178x218 images."""
    return make_celeba_files()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A folder served over HTTP on 127.0.0.1: (folder, base URL ending in /)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
