"""What the downloadable datasets share: split and not-found messages, labels outside their ten
classes refused, and (for the two IDX datasets, served from 127.0.0.1) verified downloads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gf_data_helpers import idx_bytes, write_mnist

from ganfriends.data import MNIST, FashionMNIST, make_dataset
from ganfriends.data.idx_dataset import IdxDataset
from ganfriends.errors import DatasetError

# dataset -> (title in messages, a split it lacks, how to get it by hand, from its message)
DOWNLOADABLE = {
    "fashion-mnist": ("Fashion-MNIST", "valid", "sudo apt-get install dataset-fashion-mnist"),
    "mnist": ("MNIST", "valid", "GANFRIENDS_MNIST_URL"),
    "cifar10": ("CIFAR-10", "all", "cifar-10-binary.tar.gz (the binary version)"),
}


@pytest.mark.parametrize("name", DOWNLOADABLE)
def test_an_unknown_split_is_rejected_with_the_choices(name: str) -> None:
    title, split, _ = DOWNLOADABLE[name]
    with pytest.raises(
        DatasetError, match=f"unknown {title} split '{split}': choose one of train, test"
    ):
        make_dataset(name, split=split)


@pytest.mark.usefixtures("no_system_fashion_mnist")
@pytest.mark.parametrize("name", DOWNLOADABLE)
def test_absent_with_downloads_disabled_is_one_actionable_line(tmp_path: Path, name: str) -> None:
    with pytest.raises(DatasetError) as info:
        make_dataset(name, download=False)
    message = str(info.value)
    assert "\n" not in message
    assert "downloads are disabled" in message
    assert DOWNLOADABLE[name][2] in message
    assert str(tmp_path / "data-dir" / name) in message  # the conftest's data dir


@pytest.mark.parametrize("dataset", [MNIST, FashionMNIST])
@pytest.mark.parametrize(("labels", "found"), [([1, 10, 2], "1..10"), ([0, 255, 1], "0..255")])
def test_a_label_outside_0_to_9_is_refused(
    tmp_path: Path, dataset: type[IdxDataset], labels: list[int], found: str
) -> None:
    write_mnist(tmp_path / "m", n_train=3)
    (tmp_path / "m" / "train-labels-idx1-ubyte.gz").unlink()
    (tmp_path / "m" / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.array(labels)))
    with pytest.raises(DatasetError, match=rf"labels outside 0\.\.9 \({found}\)"):
        dataset(tmp_path / "m")


@pytest.mark.parametrize("dataset", [MNIST, FashionMNIST])
def test_download_keeps_the_four_verified_files(
    tmp_path: Path, dataset: type[IdxDataset], served_idx: tuple[str, dict[str, str]]
) -> None:
    url, sums = served_idx
    dest = dataset.home.download(tmp_path / "d", base_url=url, checksums=sums, progress=False)
    assert sorted(p.name for p in dest.iterdir()) == sorted(f"{n}.gz" for n in sums)
    assert len(dataset(dest)) == 7


@pytest.mark.parametrize("dataset", [MNIST, FashionMNIST])
def test_a_download_with_a_checksum_mismatch_is_refused_and_not_kept(
    tmp_path: Path, dataset: type[IdxDataset], served_idx: tuple[str, dict[str, str]]
) -> None:
    url, sums = served_idx
    sums["train-labels-idx1-ubyte"] = "0" * 64
    with pytest.raises(DatasetError, match=f"checksum mismatch.*{dataset.home.url_env}"):
        dataset.home.download(tmp_path / "d", base_url=url, checksums=sums, progress=False)
    assert not list((tmp_path / "d").glob("train-labels*"))
    assert not list((tmp_path / "d").glob(".*part"))


@pytest.mark.usefixtures("no_system_fashion_mnist")
@pytest.mark.parametrize("dataset", [MNIST, FashionMNIST])
def test_make_dataset_downloads_from_the_mirror_in_the_environment(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    dataset: type[IdxDataset],
    served_idx: tuple[str, dict[str, str]],
) -> None:
    url, sums = served_idx
    monkeypatch.setenv(dataset.home.url_env, url)
    monkeypatch.setattr(dataset.home, "sha256", sums)
    ds = make_dataset(dataset.name, split="test", data_dir=tmp_path / "dd")
    assert len(ds) == 3
    assert (tmp_path / "dd" / dataset.name / "train-images-idx3-ubyte.gz").is_file()
