"""submit_result, reject_result and credit_workers against a real PostgreSQL."""

from __future__ import annotations

import threading
from typing import Any

from ganfriends.db import Database
from tests.integration.queue_helpers import (
    Raw,
    claim,
    claim_backup,
    held_by_a,
    new_run,
    one_lease,
    primary_and_backup,
    register,
    submit,
)


def test_upload_with_a_live_lease_is_accepted_and_completes_the_unit(
    db: Database, raw: Raw
) -> None:
    # Prepare
    run_id, worker, lease = one_lease(db, units=2)

    # Execute
    accepted = submit(db, run_id, worker, lease["token"], b"grads-0", images=60)

    # Assert
    assert accepted == {"unit_id": lease["unit_id"]}
    unit = raw.unit(lease["unit_id"])
    assert unit["state"] == "done" and unit["lease_expires_at"] is None
    result = raw.one("SELECT * FROM results WHERE unit_id = %(id)s", id=lease["unit_id"])
    assert result["run_id"] == run_id and result["worker_id"] == worker
    assert (result["version"], result["unit_index"]) == (0, lease["unit_index"])
    assert result["images"] == 60 and bytes(result["payload"]) == b"grads-0"
    assert raw.lease(lease["token"])["state"] == "done"


def test_late_upload_after_the_lease_expired_is_refused(db: Database, raw: Raw) -> None:
    # Prepare: A's lease expired; nobody has re-claimed the unit.
    run_id, worker, lease = one_lease(db)
    raw.expire_lease(lease["token"])

    # Execute
    accepted = submit(db, run_id, worker, lease["token"])

    # Assert
    assert accepted is None
    assert raw.count("results") == 0
    assert raw.unit(lease["unit_id"])["state"] == "claimed"


def test_late_upload_after_the_unit_was_reclaimed_is_refused(db: Database, raw: Raw) -> None:
    # Prepare: A's lease expired and B re-claimed the unit.
    run_id, worker_a, worker_b, old = held_by_a(db)
    raw.expire_lease(old["token"])
    new = claim(db, run_id, worker_b)
    assert new is not None and new["unit_id"] == old["unit_id"]

    # Execute
    late = submit(db, run_id, worker_a, old["token"], b"late")

    # Assert: nothing stored, B still holds the unit and B's upload is the one accepted.
    assert late is None
    assert raw.count("results") == 0
    assert raw.lease(new["token"])["state"] == "active"
    assert raw.unit(old["unit_id"])["state"] == "claimed"
    assert submit(db, run_id, worker_b, new["token"], b"fresh") == {"unit_id": old["unit_id"]}
    assert bytes(raw.scalar("SELECT payload FROM results")) == b"fresh"


def test_duplicate_upload_with_the_same_token_is_refused_and_stored_once(
    db: Database, raw: Raw
) -> None:
    # Prepare
    run_id, worker, lease = one_lease(db)
    assert submit(db, run_id, worker, lease["token"], b"first") is not None

    # Execute
    again = submit(db, run_id, worker, lease["token"], b"second")

    # Assert
    assert again is None
    assert raw.count("results") == 1
    assert bytes(raw.scalar("SELECT payload FROM results")) == b"first"


def test_upload_with_another_workers_token_is_refused(db: Database, raw: Raw) -> None:
    # Prepare: A holds the unit; B has the token (a guessed or stolen one).
    run_id, _worker_a, worker_b, lease = held_by_a(db)

    # Execute
    foreign = submit(db, run_id, worker_b, lease["token"])

    # Assert: refused, and A's lease and unit are untouched.
    assert foreign is None
    assert raw.count("results") == 0
    assert raw.lease(lease["token"])["state"] == "active"
    assert raw.unit(lease["unit_id"])["state"] == "claimed"


def test_upload_with_a_token_of_another_run_is_refused(db: Database, raw: Raw) -> None:
    # Prepare: two runs; the worker holds a unit of run A and uploads it as run B's.
    run_a = new_run(db, units_per_update=1, name="a")
    run_b = new_run(db, units_per_update=1, name="b")
    worker = register(db, run_a)
    lease = claim(db, run_a, worker)
    assert lease is not None

    # Execute
    foreign = submit(db, run_b, worker, lease["token"])

    # Assert
    assert foreign is None
    assert raw.count("results") == 0
    assert {u["state"] for u in raw.units(run_b)} == {"pending"}
    assert raw.unit(lease["unit_id"])["state"] == "claimed"


def test_racing_primary_and_backup_uploads_are_both_stored_once(
    db: Database, db_url: str, raw: Raw
) -> None:
    # Prepare: A holds the unit, B a backup copy; both uploads will be in flight at once.
    run_id, worker_a, worker_b, primary, backup = primary_and_backup(db)
    unit_id = primary["unit_id"]
    outcome: dict[int, Any] = {}

    def upload(worker: int, token: Any) -> None:
        try:
            outcome[worker] = submit(db, run_id, worker, token, f"from-{worker}".encode())
        except BaseException as exc:  # pragma: no cover - reported by the assertions
            outcome[worker] = exc

    threads = [
        threading.Thread(target=upload, args=(worker_a, primary["token"])),
        threading.Thread(target=upload, args=(worker_b, backup["token"])),
    ]

    # Execute: hold the unit's row lock so that both uploads start (and take their snapshots)
    # before either can complete, then let them go.
    holder = Raw(db_url)
    try:
        with holder.conn.transaction():
            holder.rows("SELECT id FROM work_units WHERE id = %(id)s FOR UPDATE", id=unit_id)
            for t in threads:
                t.start()
            raw.wait_for_lock_waiters(2, "the uploads never both waited on the unit")
        for t in threads:
            t.join(timeout=10)
    finally:
        holder.close()

    # Assert: the first copy does not cancel the other (it may turn out invalid): both are
    # stored, once each, and both leases are done.
    assert outcome == {worker_a: {"unit_id": unit_id}, worker_b: {"unit_id": unit_id}}
    assert raw.lease(primary["token"])["state"] == "done"
    assert raw.lease(backup["token"])["state"] == "done"
    copies = {r["worker_id"]: bytes(r["payload"])
              for r in raw.rows("SELECT worker_id, payload FROM results")}  # fmt: skip
    assert copies == {worker_a: f"from-{worker_a}".encode(), worker_b: f"from-{worker_b}".encode()}
    assert raw.unit(unit_id)["state"] == "done"


def test_a_backup_copy_after_the_primarys_is_stored_beside_it(db: Database, raw: Raw) -> None:
    # Prepare: A and B hold copies of one unit; A uploads first.
    run_id, worker_a, worker_b, primary, backup = primary_and_backup(db)
    assert submit(db, run_id, worker_a, primary["token"], b"a") is not None

    # Execute
    second = submit(db, run_id, worker_b, backup["token"], b"b")

    # Assert: B's copy is kept for the coordinator to compare; B cannot upload twice.
    assert second == {"unit_id": primary["unit_id"]}
    assert raw.lease(backup["token"])["state"] == "done"
    assert raw.count("results") == 2
    assert submit(db, run_id, worker_b, backup["token"], b"b again") is None
    assert raw.count("results") == 2


def test_rejecting_the_first_copy_keeps_the_unit_done_when_another_copy_is_stored(
    db: Database, raw: Raw
) -> None:
    # Prepare: A's and B's copies of one unit are stored.
    run_id, worker_a, worker_b, primary, backup = primary_and_backup(db)
    assert submit(db, run_id, worker_a, primary["token"], b"bad") is not None
    assert submit(db, run_id, worker_b, backup["token"], b"good") is not None

    # Execute
    db.execute(
        "reject_result", unit_id=primary["unit_id"], worker_id=worker_a, reason="NaN", blame=True
    )

    # Assert: only A's copy went, A is blamed, the unit stays done with B's copy.
    assert [r["worker_id"] for r in raw.rows("SELECT worker_id FROM results")] == [worker_b]
    assert raw.unit(primary["unit_id"])["state"] == "done"
    assert (raw.worker(worker_a)["rejected"], raw.worker(worker_b)["rejected"]) == (1, 0)


def test_a_rejected_copy_does_not_cancel_a_copy_still_being_computed(
    db: Database, raw: Raw
) -> None:
    # Prepare: A (fast, hostile) uploads; B's backup copy of the same unit is still computing.
    run_id = new_run(db, units_per_update=1)
    worker_a, worker_b, worker_c = (register(db, run_id, n) for n in "abc")
    primary = claim(db, run_id, worker_a)
    backup = claim_backup(db, run_id, worker_b)
    assert primary is not None and backup is not None
    assert submit(db, run_id, worker_a, primary["token"], b"garbage") is not None

    # Execute: the coordinator rejects A's copy.
    db.execute(
        "reject_result", unit_id=primary["unit_id"], worker_id=worker_a, reason="bad", blame=True
    )

    # Assert: the unit waits for B (claimed until B's lease ends, not handed to an idle C), and
    # B's copy is then accepted.
    unit = raw.unit(primary["unit_id"])
    assert unit["state"] == "claimed"
    assert unit["lease_expires_at"] == raw.lease(backup["token"])["expires_at"]
    assert claim(db, run_id, worker_c) is None
    assert submit(db, run_id, worker_b, backup["token"], b"honest") is not None
    assert raw.unit(primary["unit_id"])["state"] == "done"
    assert [bytes(r["payload"]) for r in raw.rows("SELECT payload FROM results")] == [b"honest"]


def test_reject_result_drops_it_requeues_the_unit_and_blames_the_worker(
    db: Database, raw: Raw
) -> None:
    # Prepare: an accepted upload for unit 1.
    run_id = new_run(db, units_per_update=2)
    worker, other = register(db, run_id), register(db, run_id, "other")
    claim(db, run_id, other)  # unit 0 (one live lease per worker)
    lease = claim(db, run_id, worker)
    assert lease is not None and lease["unit_index"] == 1
    assert submit(db, run_id, worker, lease["token"]) is not None

    # Execute
    db.execute(
        "reject_result",
        unit_id=lease["unit_id"],
        worker_id=worker,
        reason="tensor g.x holds NaN",
        blame=True,
    )

    # Assert
    assert raw.count("results") == 0
    unit = raw.unit(lease["unit_id"])
    assert unit["state"] == "pending" and unit["lease_expires_at"] is None
    assert raw.worker(worker)["rejected"] == 1
    rejection = raw.one("SELECT * FROM rejections")
    assert rejection["run_id"] == run_id and rejection["worker_id"] == worker
    assert (rejection["version"], rejection["unit_index"]) == (0, 1)
    assert rejection["reason"] == "tensor g.x holds NaN"
    redo = claim(db, run_id, worker)
    assert redo is not None and redo["unit_id"] == lease["unit_id"]


def test_credit_workers_counts_each_consumed_copy_once(db: Database, raw: Raw) -> None:
    # Prepare: three units; A does unit 0, B unit 1; unit 2 is C's, but A's backup copy of it
    # arrives first and is the one the coordinator uses.
    run_id = new_run(db, units_per_update=3)
    a, b, c = (register(db, run_id, name) for name in "abc")
    lease_a, lease_b, lease_c = (claim(db, run_id, w) for w in (a, b, c))
    assert lease_a and lease_b and lease_c
    assert submit(db, run_id, a, lease_a["token"], images=64) is not None
    assert submit(db, run_id, b, lease_b["token"], images=64) is not None
    backup_a = claim_backup(db, run_id, a)
    assert backup_a is not None and backup_a["unit_id"] == lease_c["unit_id"]
    assert submit(db, run_id, a, backup_a["token"], images=32) is not None
    assert submit(db, run_id, c, lease_c["token"], images=64) is not None

    # Execute: consume the version as the coordinator does, then credit once more.
    used = {
        "unit_ids": [lease["unit_id"] for lease in (lease_a, lease_b, lease_c)],
        "worker_ids": [a, b, a],
    }
    with db.transaction() as tx:
        tx.execute("credit_workers", **used)
        tx.execute("delete_version_units", run_id=run_id, version=0)
    db.execute("credit_workers", **used)

    # Assert
    done = {w: (raw.worker(w)["units_done"], raw.worker(w)["images_done"]) for w in (a, b, c)}
    assert done == {a: (2, 96), b: (1, 64), c: (0, 0)}


def test_credit_workers_ignores_rejected_results(db: Database, raw: Raw) -> None:
    # Prepare: two accepted uploads by one worker, one of them rejected.
    run_id = new_run(db, units_per_update=2)
    worker = register(db, run_id)
    unit_ids = []
    for _ in range(2):
        lease = claim(db, run_id, worker)
        assert lease is not None and submit(db, run_id, worker, lease["token"]) is not None
        unit_ids.append(lease["unit_id"])
    db.execute("reject_result", unit_id=unit_ids[1], worker_id=worker, reason="bad", blame=True)

    # Execute
    db.execute("credit_workers", unit_ids=unit_ids, worker_ids=[worker, worker])

    # Assert
    row = raw.worker(worker)
    assert (row["units_done"], row["images_done"], row["rejected"]) == (1, 64, 1)
