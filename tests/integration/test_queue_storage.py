"""What the database keeps once versions are consumed: no results, only the current units, and
only the weights prune_weights keeps."""

from __future__ import annotations

import io
import threading
from pathlib import Path
from typing import Any

from rich.console import Console

from ganfriends.classroom.coordinator import Coordinator, CoordinatorResult
from ganfriends.classroom.payload import encode_result
from ganfriends.config import Config
from ganfriends.db import Database
from ganfriends.signals import StopRequest
from tests.integration.queue_helpers import (
    Raw,
    claim,
    new_run,
    random_result,
    register,
    submit,
    tiny_models,
)

STOP_AT = 4  # the coordinator publishes versions 1..4, then is stopped while v4 is computed
KEEP_LAST, KEEP_EVERY = 2, 3


def _work(db_url: str, run_id: int, stop: StopRequest, errors: list[BaseException]) -> None:
    """An in-process worker: claims units and uploads random (valid) results until it is handed
    a unit of version STOP_AT, which it gives back before stopping the coordinator."""
    try:
        generator, discriminator = tiny_models()
        with Database(db_url, min_size=1, max_size=1, timeout=10) as db:
            worker = register(db, run_id, "thread")
            while not stop.requested:
                lease = claim(db, run_id, worker)
                if lease is None:
                    stop.event.wait(0.01)
                    continue
                if lease["version"] >= STOP_AT:
                    db.execute("release_lease", token=lease["token"], worker_id=worker)
                    break
                result = random_result(generator, discriminator, seed=lease["unit_index"])
                accepted = submit(db, run_id, worker, lease["token"], encode_result(result))
                assert accepted is not None
    except BaseException as exc:  # pragma: no cover - re-raised by the test
        errors.append(exc)
    finally:
        stop.request()


def drive_coordinator(db: Database, db_url: str, run_id: int, output_dir: Path) -> Any:
    """Run a real Coordinator on ``run_id`` with one worker thread until version STOP_AT."""
    config = Config()
    config.coordinator.output_dir = str(output_dir)
    config.coordinator.poll_interval = 0.01
    config.coordinator.sample_interval = 1000
    config.coordinator.keep_last_versions = KEEP_LAST
    config.coordinator.keep_every_versions = KEEP_EVERY
    stop = StopRequest()
    errors: list[BaseException] = []
    thread = threading.Thread(target=_work, args=(db_url, run_id, stop, errors))
    thread.start()
    try:
        result = Coordinator(db, config, console=Console(file=io.StringIO())).run(stop)
    finally:
        stop.request()
        thread.join(timeout=30)
    assert not errors, errors
    return result


def test_consumed_versions_leave_no_results_and_only_the_current_units(
    db: Database, db_url: str, raw: Raw, tmp_path: Path
) -> None:
    # Prepare: 10 units of 2 per update (5 updates).
    run_id = new_run(db, units_per_update=2)

    # Execute: a real coordinator consumes versions 0..3.
    result = drive_coordinator(db, db_url, run_id, tmp_path)

    # Assert
    assert result == CoordinatorResult(run_id, STOP_AT, False)
    assert raw.count("results") == 0
    units = raw.units(run_id)
    assert [(u["version"], u["unit_index"], u["state"]) for u in units] == [
        (STOP_AT, 8, "pending"),
        (STOP_AT, 9, "pending"),
    ]
    lease_units = {r["unit_id"] for r in raw.rows("SELECT DISTINCT unit_id FROM leases")}
    assert lease_units <= {u["id"] for u in units}
    assert raw.count("updates") == STOP_AT
    worker = raw.one("SELECT units_done, images_done FROM workers")
    assert worker == {"units_done": 2 * STOP_AT, "images_done": 2 * STOP_AT * 64}


def test_coordinator_keeps_only_the_latest_and_every_nth_weights(
    db: Database, db_url: str, raw: Raw, tmp_path: Path
) -> None:
    # Prepare
    run_id = new_run(db, units_per_update=2)

    # Execute
    drive_coordinator(db, db_url, run_id, tmp_path)

    # Assert: keep_last=2 -> 3, 4; keep_every=3 -> 0, 3.
    versions = [r["version"] for r in raw.rows("SELECT version FROM weights ORDER BY version")]
    assert versions == [0, 3, 4]
    assert raw.one("SELECT version FROM optimizer_states") == {"version": STOP_AT}


def test_delete_version_units_removes_only_that_versions_units_results_and_leases(
    db: Database, raw: Raw
) -> None:
    # Prepare: run A's version 0 fully uploaded; run B has a claimed unit too.
    run_a = new_run(db, units_per_update=2, name="a")
    run_b = new_run(db, units_per_update=2, name="b")
    worker_a, worker_b = register(db, run_a), register(db, run_b)
    consumed = []
    for _ in range(2):
        lease = claim(db, run_a, worker_a)
        assert lease is not None and submit(db, run_a, worker_a, lease["token"]) is not None
        consumed.append(lease["unit_id"])
    lease_b = claim(db, run_b, worker_b)
    assert lease_b is not None

    # Execute: the coordinator's consumption of run A's version 0.
    with db.transaction() as tx:
        tx.execute("credit_workers", unit_ids=consumed, worker_ids=[worker_a] * 2)
        tx.execute("delete_version_units", run_id=run_a, version=0)

    # Assert
    assert raw.count("results") == 0
    assert raw.units(run_a) == []
    assert (
        raw.count("leases", "unit_id IN (SELECT id FROM work_units WHERE run_id = %(r)s)", r=run_a)
        == 0
    )
    assert len(raw.units(run_b)) == 2
    assert raw.lease(lease_b["token"])["state"] == "active"


def test_prune_weights_keeps_the_latest_versions_and_every_nth(db: Database, raw: Raw) -> None:
    # Prepare: versions 0..12 of run A, 0..1 of run B.
    run_a = new_run(db, units_per_update=1, name="a")
    run_b = new_run(db, units_per_update=1, name="b")
    blobs: dict[str, bytes | None] = {"generator": b"g", "discriminator": b"d"}
    blobs |= {"generator_download": None, "discriminator_download": None}
    for version in range(1, 13):
        db.execute("insert_weights", run_id=run_a, version=version, **blobs)
    db.execute("insert_weights", run_id=run_b, version=1, **blobs)

    # Execute
    db.execute("prune_weights", run_id=run_a, newest=12, keep_last=3, keep_every=5)

    # Assert: the newest 3 (10, 11, 12) and every 5th (0, 5, 10); run B untouched.
    def versions(run_id: int) -> list[int]:
        rows = raw.rows(
            "SELECT version FROM weights WHERE run_id = %(r)s ORDER BY version", r=run_id
        )
        return [r["version"] for r in rows]

    assert versions(run_a) == [0, 5, 10, 11, 12]
    assert versions(run_b) == [0, 1]
