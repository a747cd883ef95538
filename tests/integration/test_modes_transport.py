"""The transport with per-device modes and the 0005 migration, on a real PostgreSQL."""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from rich.console import Console

from ganfriends.classroom import queue
from ganfriends.classroom.coordinator import Coordinator
from ganfriends.classroom.payload import encode_device_state, encode_result
from ganfriends.classroom.state import create_run, load_run_state
from ganfriends.config import Config
from ganfriends.db import Database, migrate
from ganfriends.db.migrations import MIGRATIONS_DIR
from ganfriends.errors import GanError
from ganfriends.rules.base import UnitResult
from ganfriends.rules.federated import FederatedPlan
from ganfriends.rules.work import Workspace
from tests.integration.queue_helpers import FINGERPRINT, TINY_MODEL, Raw, register
from tests.unit.test_rules import Labelled, federated_config

CPU = torch.device("cpu")


@pytest.fixture
def dataset() -> Labelled:
    return Labelled(n=640)


def federated_run(db: Database, dataset: Labelled) -> int:
    config = federated_config()
    plan = FederatedPlan.from_config(config, dataset)
    with db.transaction() as tx:
        return create_run(
            tx, name="fed", mode="federated", plan=plan, config=config.to_dict(),
            model_config=TINY_MODEL, fingerprint=dataset.fingerprint().to_dict(),
            lease_seconds=30, max_backups=0, max_units_per_claim=4, dataset=dataset,
        )  # fmt: skip


def upload(
    db: Database,
    run_id: int,
    worker: int,
    claimed: queue.Claim,
    result: UnitResult,
    device_state: bytes | None,
) -> set[int]:
    """Upload a computed unit as the worker does; the units stored."""
    outgoing = queue.Outgoing(claimed, result.images, encode_result(result), device_state, 0.0)
    return queue.submit(db, run_id, worker, [outgoing])


def compute_and_upload(db: Database, run_id: int, worker: int, dataset: Labelled) -> queue.Claim:
    """What a worker does for one unit, with the run's own rule."""
    state = load_run_state(db, run_id, dataset)
    [claimed] = queue.claim(db, run_id, worker)
    g, d = state.server.generator, state.server.discriminator
    result = state.rule.compute(Workspace(g, d, dataset, CPU), claimed.unit)
    assert result.device_state is not None
    accepted = upload(db, run_id, worker, claimed, result, encode_device_state(result.device_state))
    assert accepted
    return claimed


def test_federated_units_are_queued_with_their_devices(
    db: Database, raw: Raw, dataset: Labelled
) -> None:
    run_id = federated_run(db, dataset)

    units = raw.units(run_id)

    state = load_run_state(db, run_id, dataset)
    assert [(u["unit_index"], u["device"]) for u in units] == [
        (u.index, u.device) for u in state.rule.units_of(0)
    ]


def test_device_states_are_stored_only_when_their_round_is_published(
    db: Database, raw: Raw, dataset: Labelled
) -> None:
    # Prepare: every member of round 0 computed and uploaded.
    run_id = federated_run(db, dataset)
    worker = register(db, run_id)
    claims = [compute_and_upload(db, run_id, worker, dataset) for _ in raw.units(run_id)]
    assert raw.count("device_states") == 0

    # Execute: the coordinator validates, combines and publishes round 1.
    coord = Coordinator(db, Config(), console=Console(file=io.StringIO()))
    state = load_run_state(db, run_id, dataset)
    valid = coord.validated_results(state)
    assert valid is not None and len(valid) == len(claims)
    coord.apply_update(state, valid, 0.0)

    # Assert: one state per member device, written by the round that produced it.
    rows = raw.rows("SELECT device, version FROM device_states ORDER BY device")
    assert rows == sorted(
        ({"device": c.unit.device, "version": 0} for c in claims),
        key=lambda r: int(r["device"] or 0),
    )
    assert queue.device_state(db, run_id, claims[0].unit.device or 0) is not None


def test_negative_second_moments_are_rejected_against_their_worker(
    db: Database, raw: Raw, dataset: Labelled
) -> None:
    run_id = federated_run(db, dataset)
    worker, cheat = register(db, run_id, "honest"), register(db, run_id, "cheat")
    state = load_run_state(db, run_id, dataset)
    compute_and_upload(db, run_id, worker, dataset)
    [claimed] = queue.claim(db, run_id, cheat)
    g, d = state.server.generator, state.server.discriminator
    result = state.rule.compute(Workspace(g, d, dataset, CPU), claimed.unit)
    assert result.device_state is not None
    result.device_state["d.0.exp_avg_sq"] = -result.device_state["d.0.exp_avg_sq"] - 1.0
    upload(db, run_id, cheat, claimed, result, encode_device_state(result.device_state))

    valid = Coordinator(db, Config(), console=Console(file=io.StringIO())).validated_results(
        load_run_state(db, run_id, dataset)
    )

    assert valid is None
    rejection = raw.one("SELECT worker_id, reason FROM rejections")
    assert rejection["worker_id"] == cheat and "negative" in rejection["reason"]


def test_an_upload_without_its_device_state_is_rejected(
    db: Database, raw: Raw, dataset: Labelled
) -> None:
    run_id = federated_run(db, dataset)
    cheat = register(db, run_id, "cheat")
    state = load_run_state(db, run_id, dataset)
    [claimed] = queue.claim(db, run_id, cheat)
    g, d = state.server.generator, state.server.discriminator
    result = state.rule.compute(Workspace(g, d, dataset, CPU), claimed.unit)
    upload(db, run_id, cheat, claimed, result, None)

    valid = Coordinator(db, Config(), console=Console(file=io.StringIO())).validated_results(
        load_run_state(db, run_id, dataset)
    )

    assert valid is None
    assert "no device state" in raw.one("SELECT reason FROM rejections")["reason"]


def test_credit_goes_only_to_the_results_a_round_combined(
    db: Database, raw: Raw, dataset: Labelled
) -> None:
    # Prepare: two uploads; the coordinator combines only the first (a quorum), then the
    # second arrives before the publish.
    run_id = federated_run(db, dataset)
    a, b = register(db, run_id, "a"), register(db, run_id, "b")
    first = compute_and_upload(db, run_id, a, dataset)
    second = compute_and_upload(db, run_id, b, dataset)

    with db.transaction() as tx:
        tx.execute("credit_workers", unit_ids=[first.unit_id], worker_ids=[a])
        tx.execute("delete_version_units", run_id=run_id, version=0)

    assert raw.worker(a)["units_done"] == 1
    assert raw.worker(b)["units_done"] == 0
    assert raw.count("results") == 0 and second.unit_id not in [u["id"] for u in raw.units(run_id)]


@pytest.fixture
def old_migrations(tmp_path: Path) -> Path:
    """The migrations as they were before the modes (0001-0004)."""
    folder = tmp_path / "migrations"
    folder.mkdir()
    for path in sorted(MIGRATIONS_DIR.glob("000[1-4]_*.sql")):
        shutil.copy(path, folder / path.name)
    return folder


@pytest.fixture
def blank_db(empty_db_url: str) -> Iterator[Database]:
    with Database(empty_db_url) as database:
        yield database


def test_a_run_created_before_the_modes_migration_gets_its_plan_and_a_clear_refusal(
    blank_db: Database, old_migrations: Path, empty_db_url: str
) -> None:
    # Prepare: the old schema, and a run row as the old create_run wrote it.
    migrate(blank_db, old_migrations)
    old = Raw(empty_db_url)
    try:
        old.rows(
            "INSERT INTO runs (name, config, model_config, fingerprint, seed, epochs, max_updates,"
            " images_per_unit, units_per_update, micro_batch, units_per_epoch, total_units,"
            " lease_seconds, max_backups, version)"
            " VALUES ('old', %(config)s, %(model)s, %(fp)s, 5, 2, NULL, 64, 4, 32, 10, 20, 30,"
            " 1, 0) RETURNING id",
            config=json.dumps(Config().to_dict()), model=json.dumps(TINY_MODEL.to_dict()),
            fp=json.dumps(FINGERPRINT),
        )  # fmt: skip

        # Execute
        applied = migrate(blank_db)

        # Assert: mode and plan rebuilt from the old columns; the run itself, of the schedule
        # before ganfriends.schedule, is refused with what to do rather than resumed wrongly.
        assert applied[0] == "0005_modes"
        row = blank_db.fetch_one("latest_running_run")
        assert row is not None and row["mode"] == "sync"
        assert row["plan"] == {
            "dataset_size": 640, "seed": 5, "images_per_unit": 64, "units_per_update": 4,
            "micro_batch": 32, "epochs": 2, "max_updates": None,
        }  # fmt: skip
        assert row["total_versions"] == 5  # ceil(20 units / 4 per update)
        with pytest.raises(GanError, match=r"older ganfriends.*--new-run"):
            queue.latest_running_run(blank_db)
    finally:
        old.close()
