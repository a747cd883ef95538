"""Shared fixtures for every test tier."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from ganfriends.evaluation import FULL_RECIPE, features_cache_dir, load_or_train_feature_net
from tests.hub_endpoint import LocalHub, configure_client, local_hub

# Tests must be reproducible and must not fight over the machine's 2 cores.
torch.set_num_threads(1)

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"


@pytest.fixture(autouse=True)
def _isolated_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """No developer config or GANFRIENDS_* variable leaks into a test."""
    for name in list(os.environ):
        if name.startswith("GANFRIENDS_") and name != "GANFRIENDS_TEST_DATABASE_URL":
            monkeypatch.delenv(name)
    monkeypatch.setenv("GANFRIENDS_DATA_DIR", str(tmp_path_factory.mktemp("data_dir")))


def fashion_mnist_available() -> bool:
    """True when Debian's dataset-fashion-mnist package is installed."""
    return os.path.isfile(os.path.join(FASHION_MNIST_DIR, "train-images-idx3-ubyte.gz"))


requires_fashion_mnist = pytest.mark.skipif(
    not fashion_mnist_available(),
    reason=f"Fashion-MNIST not installed at {FASHION_MNIST_DIR} (make install installs it)",
)


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[LocalHub]:
    """A local Hugging Face Hub endpoint, which this process's client is set to talk to."""
    with local_hub() as endpoint:
        configure_client(monkeypatch, endpoint, tmp_path / "hf_home")
        yield endpoint


@pytest.fixture(scope="session")
def full_features_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir whose features/ cache holds the full-recipe feature classifier, trained once
    for the whole run (~45 s): the tests and their subprocesses only load it.

    `make test` runs two pytest-xdist workers; both use one folder beside their own temp roots,
    and a lock makes the second wait for the first's training instead of training again.
    """
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the run's temp root, which holds each worker's
    data_dir = root / "full_features"
    data_dir.mkdir(exist_ok=True)
    with open(root / "full_features.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        load_or_train_feature_net(
            "fashion-mnist", cache_dir=features_cache_dir(data_dir), recipe=FULL_RECIPE
        )
    return data_dir
