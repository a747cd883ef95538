"""What crosses the database per version (issue 22): a worker downloads only the networks a
version changed (rounded copies too), and compressed uploads and downloads keep a class run equal
to its simulation bit for bit."""

from __future__ import annotations

import io
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from rich.console import Console

from ganfriends.classroom import queue
from ganfriends.classroom.payload import load_weights
from ganfriends.classroom.unit_work import WorkSession
from ganfriends.config import Config
from ganfriends.db import Database
from ganfriends.models import build_models
from ganfriends.training.simulate import simulate
from tests.integration.test_rule_contract import (  # noqa: F401  (images: a fixture)
    class_run,
    images,
    open_data,
    run_config,
)


@dataclass
class Served:
    """A one-worker class run watched version by version: per version the bytes its worker
    fetched and the bytes published, by network."""

    db: Database
    fetched: list[dict[str, int]] = field(default_factory=list)
    published: list[dict[str, int]] = field(default_factory=list)
    seen: Counter[str] = field(default_factory=Counter)

    def worked(self, work: WorkSession, version: int) -> None:
        """Note what the worker fetched for ``version`` and what that version published."""
        self.fetched.append(dict(work.published.fetched - self.seen))
        self.seen = Counter(work.published.fetched)
        blobs = queue.weights(self.db, work.run_id, version)
        assert blobs is not None
        self.published.append(
            {"generator": len(blobs.generator), "discriminator": len(blobs.discriminator)}
        )


@pytest.fixture
def config(images: Path, tmp_path: Path) -> Config:  # noqa: F811  (the imported fixture)
    """The contract's tiny sync run: alternating, two steps (four versions)."""
    return run_config("sync", images, tmp_path)


def test_a_worker_downloads_only_the_networks_each_version_changed(
    config: Config, db: Database
) -> None:
    served = Served(db)

    class_run(db, config, open_data(config), served.worked)

    # Version 2s+1 follows D's step (D changed); 2s+2 follows G's step (G changed, and D's
    # BatchNorm statistics, which G's units report): both blobs.
    expected = [
        sizes if version % 2 == 0 else {"discriminator": sizes["discriminator"]}
        for version, sizes in enumerate(served.published)
    ]
    assert served.fetched == expected


def test_networks_kept_across_versions_equal_a_full_download(config: Config, db: Database) -> None:
    differ: list[str] = []

    def compare(work: WorkSession, version: int) -> None:
        work.published.load(db, work.run_id, version)  # the version as the worker holds it
        blobs = queue.weights(db, work.run_id, version)
        assert blobs is not None
        full = build_models(work.run.model_config)
        for model, blob in zip(full, (blobs.generator, blobs.discriminator), strict=True):
            load_weights(model, blob)
        for ours, theirs in zip((work.generator, work.discriminator), full, strict=True):
            state = theirs.state_dict()
            differ.extend(
                f"{version}: {name}"
                for name, tensor in ours.state_dict().items()
                if not torch.equal(tensor, state[name])
            )

    class_run(db, config, open_data(config), compare)

    assert differ == []


def test_an_int8_download_is_far_smaller_than_the_weights_and_still_only_what_changed(
    config: Config, db: Database
) -> None:
    config.coordinator.download_dtype = "int8"
    served = Served(db)

    class_run(db, config, open_data(config), served.worked)

    for version, (fetched, published) in enumerate(
        zip(served.fetched, served.published, strict=True)
    ):
        expected = set(published) if version % 2 == 0 else {"discriminator"}
        assert set(fetched) == expected, version
        for network, size in fetched.items():
            # A quarter of float32's values, plus a header and scales that weigh in networks
            # this small (a third of the blob here; 1% for the demo's).
            assert size < 0.4 * published[network], (version, network)


@pytest.mark.parametrize(
    ("case", "transfer", "download"),
    [
        ("sync", "bfloat16", "float32"),
        ("sync", "bfloat16-stochastic", "float32"),
        ("sync", "int8", "float32"),
        ("sync", "float32", "int8"),
        ("sync:local-steps", "int8", "float32"),
        ("sync:local-steps", "int8", "int8"),
        ("sync:local-steps", "float32", "bfloat16-stochastic"),
    ],
)
def test_a_compressed_class_run_gives_its_simulation_s_model(
    images: Path,  # noqa: F811  (the imported fixture)
    tmp_path: Path,
    case: str,
    transfer: str,
    download: str,
    db: Database,
) -> None:
    config = run_config(case, images, tmp_path)
    config.coordinator.transfer_dtype = transfer
    config.coordinator.download_dtype = download

    simulated = simulate(config, console=Console(file=io.StringIO()))
    served = class_run(db, config, open_data(config))

    saved = torch.load(simulated.latest_checkpoint, map_location="cpu", weights_only=False)
    for key, net in (("generator_state_dict", served.generator),
                     ("discriminator_state_dict", served.discriminator)):  # fmt: skip
        ours = net.state_dict()
        for name, tensor in saved[key].items():
            assert torch.equal(ours[name], tensor), f"{key} {name}"


def test_workers_that_download_rounded_weights_train_another_model_on_fewer_bytes(
    images: Path,  # noqa: F811  (the imported fixture)
    tmp_path: Path,
) -> None:
    runs = {}
    for download in ("float32", "int8"):
        config = run_config("sync:local-steps", images, tmp_path / download)
        config.coordinator.download_dtype = download
        runs[download] = simulate(config, console=Console(file=io.StringIO()))
    saved = {
        name: torch.load(run.latest_checkpoint, map_location="cpu", weights_only=False)
        for name, run in runs.items()
    }

    assert runs["int8"].bytes_moved < 0.7 * runs["float32"].bytes_moved
    g32, g8 = (saved[name]["generator_state_dict"] for name in ("float32", "int8"))
    assert any(not torch.equal(g32[name], g8[name]) for name in g32)
