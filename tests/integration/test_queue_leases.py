"""Leases against a real PostgreSQL: expiry by the database clock, heartbeats, release, backups."""

from __future__ import annotations

import datetime
import io
import threading
import time
from typing import TypedDict
from uuid import UUID

import pytest
import torch
from rich.console import Console

from ganfriends.classroom.worker import Worker
from ganfriends.config import Config
from ganfriends.db import Database
from tests.integration.queue_helpers import (
    Raw,
    claim,
    held_by_a,
    new_run,
    one_lease,
    primary_and_backup,
    register,
    submit,
)


class ClaimedUnit(TypedDict):
    unit_id: int
    unit_index: int
    token: UUID
    backup: bool


def worker_claim(db: Database, run_id: int, worker_id: int) -> ClaimedUnit | None:
    """What a real worker does to get work: claim_units, else claim_backup_unit, in one tx."""
    worker = Worker(db, Config(), console=Console(file=io.StringIO()))
    worker.worker_id = worker_id
    claims = worker.claim(run_id)
    if not claims:
        return None
    [claimed] = claims
    return {
        "unit_id": claimed.unit_id,
        "unit_index": claimed.unit.index,
        "token": claimed.token,
        "backup": claimed.backup,
    }


def wait_until_db_clock_passes(raw: Raw, moment: datetime.datetime) -> None:
    """Really wait (a second at most here) until the database's now() is past ``moment``."""
    deadline = time.monotonic() + 10
    while raw.scalar("SELECT now() <= %(t)s", t=moment):
        assert time.monotonic() < deadline
        time.sleep(0.05)


# ---------------------------------------------------------------- expiry


def test_unit_with_expired_lease_is_claimable_again_and_old_lease_marked_expired(
    db: Database, raw: Raw
) -> None:
    # Prepare: A claims the only unit; its lease expires (moved into the past on the DB clock).
    run_id, _worker_a, worker_b, first = held_by_a(db)
    raw.expire_lease(first["token"])

    # Execute
    second = claim(db, run_id, worker_b)

    # Assert
    assert second is not None
    assert second["unit_id"] == first["unit_id"] and second["token"] != first["token"]
    old = raw.lease(first["token"])
    assert old["state"] == "expired" and old["finished_at"] is not None
    new = raw.lease(second["token"])
    assert new["state"] == "active" and new["worker_id"] == worker_b and new["live"]
    unit = raw.unit(first["unit_id"])
    assert unit["state"] == "claimed" and unit["attempts"] == 2
    assert unit["lease_expires_at"] == new["expires_at"]


def test_lease_expiry_is_judged_by_the_database_clock(db: Database, raw: Raw) -> None:
    # Prepare: a one-second lease, really waited out (until the DB clock passes its expiry).
    run_id = new_run(db, units_per_update=1, lease_seconds=1.0)
    worker_a, worker_b = register(db, run_id, "a"), register(db, run_id, "b")
    first = claim(db, run_id, worker_a)
    assert first is not None
    assert claim(db, run_id, worker_b) is None  # live right after the claim

    # Execute
    wait_until_db_clock_passes(raw, first["expires_at"])
    second = claim(db, run_id, worker_b)

    # Assert
    assert second is not None and second["unit_id"] == first["unit_id"]
    assert raw.lease(first["token"])["state"] == "expired"


# ---------------------------------------------------------------- heartbeat


def test_heartbeat_keeps_lease_alive_past_its_original_expiry(db: Database, raw: Raw) -> None:
    # Prepare: A's lease is about to expire (1 s left on the DB clock); the run's lease is 30 s.
    run_id = new_run(db, units_per_update=1, lease_seconds=30.0)
    worker_a, worker_b = register(db, run_id, "a"), register(db, run_id, "b")
    lease = claim(db, run_id, worker_a)
    assert lease is not None
    raw.expire_lease_in(lease["token"], 1.0)
    original = raw.lease(lease["token"])["expires_at"]

    # Execute: heartbeat, then wait past the original expiry.
    with db.transaction() as tx:
        tx.execute("heartbeat", worker_id=worker_a)
        tx.execute("extend_leases", worker_id=worker_a)
    wait_until_db_clock_passes(raw, original)

    # Assert: still A's, not claimable by B, and A's upload is accepted.
    now = raw.scalar("SELECT now()")
    after = raw.lease(lease["token"])
    assert original < now < after["expires_at"]
    assert raw.unit(lease["unit_id"])["lease_expires_at"] == after["expires_at"]
    assert claim(db, run_id, worker_b) is None
    assert submit(db, run_id, worker_a, lease["token"]) == {"unit_id": lease["unit_id"]}


def test_heartbeat_does_not_revive_an_expired_lease(db: Database, raw: Raw) -> None:
    # Prepare: A's lease has expired but nobody re-claimed the unit yet.
    run_id, worker_a, worker_b, lease = held_by_a(db)
    raw.expire_lease(lease["token"])
    expired_at = raw.lease(lease["token"])["expires_at"]

    # Execute
    db.execute("extend_leases", worker_id=worker_a)

    # Assert: unchanged, so A cannot upload and B can take the unit.
    after = raw.lease(lease["token"])
    assert after["expires_at"] == expired_at and not after["live"]
    assert submit(db, run_id, worker_a, lease["token"]) is None
    taken = claim(db, run_id, worker_b)
    assert taken is not None and taken["unit_id"] == lease["unit_id"]


def test_heartbeat_extends_only_the_workers_own_leases(db: Database, raw: Raw) -> None:
    # Prepare: A and B hold one unit each, both near expiry.
    run_id = new_run(db, units_per_update=2, lease_seconds=30.0)
    worker_a, worker_b = register(db, run_id, "a"), register(db, run_id, "b")
    lease_a, lease_b = claim(db, run_id, worker_a), claim(db, run_id, worker_b)
    assert lease_a is not None and lease_b is not None
    for lease in (lease_a, lease_b):
        raw.expire_lease_in(lease["token"], 5.0)
    before_b = raw.lease(lease_b["token"])["expires_at"]

    # Execute
    db.execute("extend_leases", worker_id=worker_a)

    # Assert
    assert raw.lease(lease_a["token"])["expires_at"] > before_b
    assert raw.lease(lease_b["token"])["expires_at"] == before_b


# ---------------------------------------------------------------- release


def test_release_lease_makes_the_unit_pending_at_once(db: Database, raw: Raw) -> None:
    # Prepare
    run_id, worker_a, worker_b, lease = held_by_a(db)

    # Execute
    db.execute("release_lease", token=lease["token"], worker_id=worker_a)

    # Assert: pending with no lease, the lease is 'released', B gets it immediately.
    unit = raw.unit(lease["unit_id"])
    assert unit["state"] == "pending" and unit["lease_expires_at"] is None
    assert raw.lease(lease["token"])["state"] == "released"
    taken = claim(db, run_id, worker_b)
    assert taken is not None and taken["unit_id"] == lease["unit_id"]


def test_release_lease_by_another_worker_changes_nothing(db: Database, raw: Raw) -> None:
    # Prepare
    _run_id, _worker_a, worker_b, lease = held_by_a(db)

    # Execute: B tries to give back A's unit.
    db.execute("release_lease", token=lease["token"], worker_id=worker_b)

    # Assert
    assert raw.unit(lease["unit_id"])["state"] == "claimed"
    assert raw.lease(lease["token"])["state"] == "active"


def test_release_lease_keeps_the_unit_claimed_while_a_backup_copy_is_live(
    db: Database, raw: Raw
) -> None:
    # Prepare: A holds the unit, B a backup copy of it.
    run_id, worker_a, worker_b, primary, backup = primary_and_backup(db)

    # Execute
    db.execute("release_lease", token=primary["token"], worker_id=worker_a)

    # Assert: still claimed (B computes it), and B's upload is accepted.
    assert raw.unit(primary["unit_id"])["state"] == "claimed"
    assert raw.lease(primary["token"])["state"] == "released"
    assert submit(db, run_id, worker_b, backup["token"]) == {"unit_id": primary["unit_id"]}


# ---------------------------------------------------------------- backups


def test_idle_worker_gets_a_pending_unit_not_a_backup_while_units_are_pending(
    db: Database, raw: Raw
) -> None:
    # Prepare: two units, A holds the first.
    run_id = new_run(db, units_per_update=2)
    worker_a, worker_b = register(db, run_id, "a"), register(db, run_id, "b")
    first = worker_claim(db, run_id, worker_a)
    assert first is not None and first["unit_index"] == 0

    # Execute
    second = worker_claim(db, run_id, worker_b)

    # Assert
    assert second is not None
    assert second["unit_index"] == 1 and second["backup"] is False
    assert raw.unit(first["unit_id"])["backups"] == 0


def test_idle_worker_gets_a_backup_copy_when_nothing_is_pending(db: Database, raw: Raw) -> None:
    # Prepare: the only unit is held by A.
    run_id = new_run(db, units_per_update=1)
    worker_a, worker_b = register(db, run_id, "a"), register(db, run_id, "b")
    primary = worker_claim(db, run_id, worker_a)
    assert primary is not None

    # Execute
    backup = worker_claim(db, run_id, worker_b)

    # Assert: a second live lease on the same unit, A's lease untouched.
    assert backup is not None and backup["backup"] is True
    assert backup["unit_id"] == primary["unit_id"] and backup["token"] != primary["token"]
    assert raw.lease(primary["token"])["state"] == "active"
    assert raw.lease(backup["token"])["state"] == "active"
    unit = raw.unit(primary["unit_id"])
    assert unit["state"] == "claimed" and unit["backups"] == 1


def test_backup_copy_is_never_handed_to_the_worker_that_holds_the_unit(
    db: Database, raw: Raw
) -> None:
    # Prepare: A holds the only unit.
    run_id = new_run(db, units_per_update=1, max_backups=3)
    worker_a = register(db, run_id, "a")
    primary = worker_claim(db, run_id, worker_a)
    assert primary is not None

    # Execute
    again = worker_claim(db, run_id, worker_a)

    # Assert
    assert again is None
    assert raw.unit(primary["unit_id"])["backups"] == 0
    assert raw.count("leases") == 1


def test_backup_copies_stop_at_max_backups(db: Database, raw: Raw) -> None:
    # Prepare: max_backups=2; A holds the only unit.
    run_id = new_run(db, units_per_update=1, max_backups=2)
    workers = [register(db, run_id, name) for name in "abcd"]
    primary = worker_claim(db, run_id, workers[0])
    assert primary is not None

    # Execute: B, C and D ask for work; B asks a second time.
    copies = [worker_claim(db, run_id, w) for w in workers[1:]]
    b_again = worker_claim(db, run_id, workers[1])

    # Assert: B and C get a copy; D and B's second request get nothing.
    assert [c is not None and c["backup"] for c in copies] == [True, True, False]
    assert b_again is None
    assert raw.unit(primary["unit_id"])["backups"] == 2
    assert raw.count("leases", "state = 'active'") == 3


# ---------------------------------------------------------------- lock order


@pytest.mark.parametrize("statement", ["extend_leases", "release_lease"])
def test_heartbeat_and_release_lock_the_unit_before_the_lease(
    db: Database, db_url: str, raw: Raw, statement: str
) -> None:
    # An upload (worker_submit_result) locks the unit, then writes the lease. A heartbeat or a
    # release that held the lease while it waited for the unit would deadlock with the worker's
    # own upload: while they wait for the unit, the lease must still be free.
    _run_id, worker, lease = one_lease(db)
    outcome: dict[str, object] = {}

    def call() -> None:
        try:
            if statement == "extend_leases":
                db.execute("extend_leases", worker_id=worker)
            else:
                db.execute("release_lease", token=lease["token"], worker_id=worker)
            outcome["done"] = True
        except BaseException as exc:  # pragma: no cover - reported by the assertion
            outcome["error"] = exc

    holder = Raw(db_url)
    thread = threading.Thread(target=call)
    try:
        with holder.conn.transaction():
            holder.rows(
                "SELECT id FROM work_units WHERE id = %(id)s FOR UPDATE", id=lease["unit_id"]
            )
            thread.start()
            raw.wait_for_lock_waiters(1, f"{statement} never waited for the unit")
            # What the upload does next; NOWAIT fails at once if the lease is held.
            holder.rows(
                "SELECT token FROM leases WHERE token = %(t)s FOR UPDATE NOWAIT", t=lease["token"]
            )
        thread.join(timeout=10)
    finally:
        holder.close()

    assert outcome == {"done": True}


def test_a_claim_whose_version_was_pruned_meanwhile_is_skipped_not_fatal(
    db: Database, raw: Raw
) -> None:
    # A backup copy completed the unit and the run moved on past the kept versions while this
    # worker was descheduled between its claim and its download.
    from ganfriends.classroom.queue import get_run
    from ganfriends.classroom.unit_work import PublishedWeights, WorkSession
    from ganfriends.models import build_models
    from ganfriends.rules import make_rule
    from ganfriends.signals import StopRequest

    run_id = new_run(db, units_per_update=1)
    out = io.StringIO()
    worker = Worker(db, Config(), console=Console(file=out, width=200))
    worker.worker_id = register(db, run_id, "slow")
    [claimed] = worker.claim(run_id)
    raw.rows("DELETE FROM weights WHERE run_id = %(r)s RETURNING version", r=run_id)
    run = get_run(db, run_id)
    g, d = build_models(run.model_config)
    # No dataset (None): the unit ends at its weights' download, before an image is read.
    session = WorkSession(run, make_rule(run.mode, run.plan, run.config, run.model_config),
                          None, g, d, PublishedWeights(g, d), torch.device("cpu"))  # type: ignore[arg-type]  # fmt: skip

    assert worker._compute(session, claimed, StopRequest()) is None
    assert "another copy completed this unit; moving on" in out.getvalue()


def test_a_worker_whose_run_ends_while_it_loads_its_data_says_the_run_finished(
    db: Database, raw: Raw
) -> None:
    # The run completes between the worker finding it and registering on it (its peers did the
    # last units while it read its dataset): a finished run, not a database error.
    from ganfriends.classroom.queue import Run
    from ganfriends.data import ImageDataset
    from tests.integration.test_coordinator_update import FixedImages

    run_id = new_run(db, units_per_update=1)
    out = io.StringIO()

    class LateWorker(Worker):
        def _open_dataset(self, run: Run) -> ImageDataset:
            raw.rows("UPDATE runs SET state = 'complete' WHERE id = %(r)s RETURNING id", r=run.id)
            return FixedImages()

    summary = LateWorker(db, Config(), console=Console(file=out, width=200)).run()

    assert summary.reason == f"run {run_id} ended before this worker joined"
    assert summary.units == 0
    assert "Training finished" in out.getvalue()
    assert raw.count("workers") == 0
