"""Shared fixtures for every test tier."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

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
    """A data dir whose features/ cache holds the full-recipe feature classifier once a test
    trained it (~40 s): later tests, subprocesses included, reuse it."""
    return tmp_path_factory.mktemp("full_features")


# `make test` runs two pytest-xdist workers with --dist loadgroup: tests that share a fixture
# that is expensive to build (a trained feature classifier, a started server) are kept on one
# worker, so that it is built once, as in a run of one process.
FIXTURE_GROUPS = {"full_features_data_dir": "full-feature-classifier"}
MODULE_GROUPS = {
    "test_eval_real": "quick-feature-classifier",  # tests.unit.test_eval_shared's evaluator
    "test_eval_classifier": "quick-feature-classifier",
    "test_eval_cli": "quick-feature-classifier",
    "test_managed_server": "managed-server",  # its module-scoped PostgreSQL cluster
    # torchrun rendezvous ports: each Slurm test's private cluster numbers its jobs from 1, and
    # a job's port derives from its id, so two at once would meet in each other's store.
    "test_slurm_submit": "torchrun",
    "test_torchrun": "torchrun",
    "test_deepspeed": "torchrun",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test that shares an expensive fixture with its group (see above)."""
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        group = next((g for f, g in FIXTURE_GROUPS.items() if f in fixtures), None)
        group = group or MODULE_GROUPS.get(item.path.stem)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))
