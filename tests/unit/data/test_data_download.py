"""Downloads through a real HTTP server on 127.0.0.1 serving generated files."""

from __future__ import annotations

from pathlib import Path

import pytest
from gf_data_helpers import write_zip

from ganfriends.data import (
    celeba_manual_steps,
    download_celeba,
    download_fashion_mnist,
    make_dataset,
    open_celeba,
)
from ganfriends.data import download as dl
from ganfriends.errors import DatasetError


def test_a_missing_file_on_the_server_reports_the_http_status(
    tmp_path: Path, http_root: tuple[Path, str]
) -> None:
    _, url = http_root
    with pytest.raises(DatasetError, match="HTTP 404"):
        download_fashion_mnist(tmp_path / "fm", base_url=url, progress=False)
    assert not list((tmp_path / "fm").iterdir())


@pytest.mark.usefixtures("no_system_fashion_mnist")
def test_make_dataset_reports_a_bad_mirror_checksum_in_one_line(
    monkeypatch: pytest.MonkeyPatch, served_idx: tuple[str, dict[str, str]]
) -> None:
    url, _ = served_idx
    monkeypatch.setenv("GANFRIENDS_FASHION_MNIST_URL", url)
    with pytest.raises(DatasetError, match="checksum mismatch") as info:
        make_dataset("fashion-mnist")
    assert "\n" not in str(info.value)


def test_download_celeba_saves_the_zip_where_open_celeba_finds_it(
    tmp_path: Path, http_root: tuple[Path, str], celeba_files: dict[str, bytes]
) -> None:
    root, url = http_root
    write_zip(root / "archive.zip", {f"img_align_celeba/{n}": b for n, b in celeba_files.items()})
    path = download_celeba(tmp_path / "celeba", url=url + "archive.zip")
    assert path == tmp_path / "celeba" / "img_align_celeba.zip"
    assert len(open_celeba(tmp_path / "celeba")) == len(celeba_files)


def test_download_celeba_reads_the_url_from_the_environment(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    http_root: tuple[Path, str],
    celeba_files: dict[str, bytes],
) -> None:
    root, url = http_root
    write_zip(root / "c.zip", {f"img_align_celeba/{n}": b for n, b in celeba_files.items()})
    monkeypatch.setenv("GANFRIENDS_CELEBA_URL", url + "c.zip")
    assert download_celeba(tmp_path).is_file()


def test_download_celeba_rejects_a_page_that_is_not_a_zip(
    tmp_path: Path, http_root: tuple[Path, str]
) -> None:
    root, url = http_root
    (root / "login.html").write_text("<html>please sign in</html>")
    with pytest.raises(DatasetError, match="did not give a zip"):
        download_celeba(tmp_path / "celeba", url=url + "login.html")
    assert not list((tmp_path / "celeba").iterdir())


def test_download_celeba_from_an_unreachable_default_mirror_explains_the_manual_steps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GANFRIENDS_CELEBA_URL", raising=False)
    monkeypatch.setattr(dl, "CELEBA_MIRROR", "http://127.0.0.1:9/img_align_celeba.zip")
    with pytest.raises(DatasetError) as info:
        download_celeba(tmp_path / "celeba")
    message = str(info.value)
    assert "\n" not in message
    assert "127.0.0.1:9" in message
    assert "mmlab.ie.cuhk.edu.hk" in message
    assert "kaggle datasets download -d jessicali9530/celeba-dataset" in message
    assert str(tmp_path / "celeba" / "img_align_celeba.zip") in message


def test_download_celeba_from_an_unreachable_url_explains_the_manual_steps(
    tmp_path: Path,
) -> None:
    with pytest.raises(DatasetError, match=r"could not download CelebA.*kaggle"):
        download_celeba(tmp_path, url="http://127.0.0.1:9/img_align_celeba.zip")


def test_download_celeba_keeps_an_existing_zip(tmp_path: Path) -> None:
    existing = write_zip(tmp_path / "img_align_celeba.zip", {"img_align_celeba/1.jpg": b"x"})
    assert download_celeba(tmp_path, url="http://127.0.0.1:9/never") == existing


def test_celeba_manual_steps_name_both_sources_and_the_destination(tmp_path: Path) -> None:
    steps = celeba_manual_steps(tmp_path)
    assert "Align&Cropped Images" in steps
    assert "jessicali9530/celeba-dataset" in steps
    assert str(tmp_path / "img_align_celeba.zip") in steps
