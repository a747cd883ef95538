"""Limits the worker statements enforce themselves (migrations 0007, 0011), on a real PostgreSQL."""

from __future__ import annotations

import pytest

from ganfriends.classroom import queue
from ganfriends.compat import WORKER_VERSION
from ganfriends.db import Database, DatabaseError
from tests.integration.queue_helpers import Raw, claim, new_run, one_lease, register, submit


def test_a_worker_holding_a_live_lease_gets_no_second_unit(db: Database) -> None:
    run_id, worker, first = one_lease(db, units=3)
    assert claim(db, run_id, worker) is None  # one live lease per worker
    assert submit(db, run_id, worker, first["token"]) is not None
    assert claim(db, run_id, worker) is not None  # free again once it uploaded


def test_an_instructors_worker_with_three_rejected_uploads_may_not_claim(
    db: Database, raw: Raw
) -> None:
    # The instructor's own workers are each a participant of their own (migration 0011).
    run_id = new_run(db, units_per_update=3)
    worker = register(db, run_id, "mallory")
    other = register(db, run_id, "honest")
    raw.strike(run_id, worker, unit_index=0)
    with pytest.raises(DatabaseError, match="quarantined"):
        claim(db, run_id, worker)
    assert claim(db, run_id, other) is not None


def test_the_instructors_role_registers_at_most_1000_workers_per_run(
    db: Database, raw: Raw
) -> None:
    run_id = new_run(db, units_per_update=1)
    register(db, run_id, "w0")
    raw.rows(
        "INSERT INTO workers (run_id, name, hostname, device, role_name, student)"
        " SELECT %(run)s, 'w', 'h', 'cpu', session_user, 'x' || i"
        " FROM generate_series(1, 999) AS i RETURNING id",
        run=run_id,
    )
    with pytest.raises(DatabaseError, match="1000 workers"):
        register(db, run_id, "one-too-many")


def test_an_upload_above_the_runs_limit_is_refused_and_not_stored(db: Database, raw: Raw) -> None:
    run_id = new_run(db, units_per_update=2)
    queue.set_upload_limit(db, run_id, 1000)
    worker = register(db, run_id)
    lease = claim(db, run_id, worker)
    assert lease is not None
    assert submit(db, run_id, worker, lease["token"], b"x" * 1001) is None
    assert raw.count("results") == 0
    assert submit(db, run_id, worker, lease["token"], b"x" * 1000) is not None


@pytest.mark.parametrize("field", ["name", "hostname", "device", "gpu_name"])
def test_a_worker_cannot_register_a_huge_text(db: Database, raw: Raw, field: str) -> None:
    # Shown on every leaderboard: 1 MB of name is refused by the statement, not stored.
    values = {"name": "w", "hostname": "h", "device": "cpu", "gpu_name": None} | {
        field: "x" * 2**20
    }
    run_id = new_run(db, units_per_update=1)
    with pytest.raises(DatabaseError, match="too long"):
        db.fetch_one(
            "register_worker", run_id=run_id, gpu_vram_gb=None, cpu_cores=None, ram_gb=None,
            version=WORKER_VERSION,
            **values,
        )  # fmt: skip
    assert raw.count("workers") == 0
