"""Finding, loading and failing to find Fashion-MNIST, on small generated IDX files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from gf_data_helpers import write_fashion_mnist

from ganfriends.data import FashionMNIST, find_fashion_mnist, make_dataset
from ganfriends.data import fashion_mnist as fm
from ganfriends.errors import DatasetError

LEVELS = ("explicit", "data_dir", "cwd_data_fashion_mnist", "cwd_data", "system")


@pytest.fixture
def everywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A copy of the files at every look-up level; the system level replaced by a temp dir."""
    dirs = {
        "explicit": tmp_path / "explicit",
        "data_dir": tmp_path / "data-dir" / "fashion-mnist",  # the conftest sets the data dir
        "cwd_data_fashion_mnist": Path.cwd() / "data" / "fashion-mnist",
        "cwd_data": Path.cwd() / "data",
        "system": tmp_path / "system",
    }
    for seed, d in enumerate(dirs.values()):
        write_fashion_mnist(d, seed=seed)
    monkeypatch.setattr(fm.FASHION_MNIST_HOME, "system_dirs", (dirs["system"],))
    return dirs


@pytest.mark.parametrize("level", LEVELS)
def test_the_first_location_holding_the_files_wins(everywhere: dict[str, Path], level: str) -> None:
    for earlier in LEVELS[: LEVELS.index(level)]:
        if earlier != "explicit":
            for f in everywhere[earlier].glob("*-ubyte.gz"):
                f.unlink()
    explicit = everywhere["explicit"] if level == "explicit" else None
    assert find_fashion_mnist(explicit) == everywhere[level]


def test_an_explicit_data_dir_argument_replaces_the_default(tmp_path: Path) -> None:
    write_fashion_mnist(tmp_path / "elsewhere" / "fashion-mnist")
    found = find_fashion_mnist(data_dir=tmp_path / "elsewhere")
    assert found == tmp_path / "elsewhere" / "fashion-mnist"


def test_an_injected_search_list_replaces_the_default(tmp_path: Path) -> None:
    write_fashion_mnist(tmp_path / "b")
    assert find_fashion_mnist(search=[tmp_path / "a", tmp_path / "b"]) == tmp_path / "b"
    assert find_fashion_mnist(search=[]) is None


def test_an_explicit_path_without_the_files_raises_naming_it(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"not found in .*empty"):
        find_fashion_mnist(tmp_path / "empty")


def test_an_explicit_path_to_one_of_the_files_means_its_folder(tmp_path: Path) -> None:
    write_fashion_mnist(tmp_path / "fm")
    assert find_fashion_mnist(tmp_path / "fm" / "train-images-idx3-ubyte.gz") == tmp_path / "fm"


def test_uncompressed_files_are_found_and_load_like_gzipped_ones(tmp_path: Path) -> None:
    write_fashion_mnist(tmp_path / "gz", gz=True, seed=3)
    write_fashion_mnist(tmp_path / "raw", gz=False, seed=3)
    a, b = FashionMNIST(tmp_path / "gz"), FashionMNIST(tmp_path / "raw")
    assert torch.equal(a.get_batch(range(6))[0], b.get_batch(range(6))[0])
    assert a.fingerprint() == b.fingerprint()


def test_a_split_needs_only_its_own_two_files(tmp_path: Path) -> None:
    write_fashion_mnist(tmp_path / "fm")
    (tmp_path / "fm" / "train-images-idx3-ubyte.gz").unlink()
    assert find_fashion_mnist(tmp_path / "fm", split="test") == tmp_path / "fm"
    with pytest.raises(DatasetError):
        find_fashion_mnist(tmp_path / "fm", split="train")


def test_generated_files_load_with_padding_and_labels(tmp_path: Path) -> None:
    contents = write_fashion_mnist(tmp_path / "fm", n_train=6)
    ds = FashionMNIST(tmp_path / "fm", split="train")
    raw = np.frombuffer(contents["train-images-idx3-ubyte"][16:], np.uint8).reshape(6, 28, 28)
    expected = torch.from_numpy(raw.astype(np.float32)) / 127.5 - 1.0
    assert torch.equal(ds[2][0, 2:30, 2:30], expected[2])
    labels = ds.labels()
    assert labels is not None and labels.tolist() == list(contents["train-labels-idx1-ubyte"][8:])


def test_image_and_label_counts_must_agree(tmp_path: Path) -> None:
    write_fashion_mnist(tmp_path / "a", n_train=6)
    write_fashion_mnist(tmp_path / "b", n_train=5)
    (tmp_path / "b" / "train-labels-idx1-ubyte.gz").replace(
        tmp_path / "a" / "train-labels-idx1-ubyte.gz"
    )
    with pytest.raises(DatasetError, match="do not belong together"):
        FashionMNIST(tmp_path / "a")


@pytest.mark.usefixtures("no_system_fashion_mnist")
def test_absent_and_unreachable_is_the_same_kind_of_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GANFRIENDS_FASHION_MNIST_URL", "http://127.0.0.1:9/")
    with pytest.raises(DatasetError) as info:
        make_dataset("fashion-mnist")
    message = str(info.value)
    assert "\n" not in message
    assert "could not be downloaded (" in message
    assert "sudo apt-get install dataset-fashion-mnist" in message
    assert "looked in" in message
