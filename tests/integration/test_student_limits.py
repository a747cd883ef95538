"""Limits per student, not per registration (migration 0011), through students' own roles.

A hostile student may register several workers and call every worker function in any order;
what they can hold of a run is bounded by what one student may hold, whatever the number of
their workers.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from ganfriends.classroom import queue
from ganfriends.db import Database, DatabaseError
from tests.integration.queue_helpers import Raw, claim, claim_backup, new_run, register, submit
from tests.integration.student_helpers import HARDWARE, Student, new_student
from tests.integration.test_session_lock import squat_every_lock


@pytest.fixture
def mallory(student: Student) -> Iterator[Database]:
    """A student's own connection (the hostile one of these tests)."""
    with Database(student.url, max_size=4, timeout=5) as db:
        yield db


def workers_of(db: Database, run_id: int, count: int, name: str = "m") -> list[int]:
    return [queue.register_worker(db, run_id, f"{name}{i}", "host", HARDWARE) for i in range(count)]


def mallorys_lease(
    db: Database, mallory: Database, units_per_update: int
) -> tuple[int, int, queue.Claim]:
    """A new run (30 s leases) in which Mallory's one worker holds a lease: the run, the worker,
    the lease."""
    run_id = new_run(db, units_per_update=units_per_update, lease_seconds=30.0)
    (worker,) = workers_of(mallory, run_id, 1)
    (lease,) = queue.claim(mallory, run_id, worker)
    return run_id, worker, lease


def live_leases(raw: Raw, role: str) -> int:
    return raw.count(
        "leases l JOIN workers w ON w.id = l.worker_id",
        "w.role_name = %(role)s AND l.state = 'active' AND l.expires_at > now()",
        role=role,
    )


def test_a_student_holds_at_most_the_runs_cap_across_all_their_workers(
    db: Database, raw: Raw, mallory: Database, student: Student
) -> None:
    run_id = new_run(db, units_per_update=8, max_units_per_claim=2)
    got = [queue.claim(mallory, run_id, w, count=2) for w in workers_of(mallory, run_id, 4)]
    assert sum(len(c) for c in got) == 2
    assert live_leases(raw, student.name) == 2


def test_while_another_student_is_active_a_student_takes_only_a_fair_share_of_a_version(
    db: Database, raw: Raw, mallory: Database, student: Student
) -> None:
    run_id = new_run(db, units_per_update=4, max_units_per_claim=4)
    honest = register(db, run_id, "honest")  # active: registered now, heartbeat now
    got = [queue.claim(mallory, run_id, w) for w in workers_of(mallory, run_id, 4)]
    assert sum(len(c) for c in got) == 2  # ceil(4 units / 2 active participants)
    assert claim(db, run_id, honest) is not None


def test_heartbeats_extend_a_lease_no_further_than_the_bound_after_its_claim(
    db: Database, raw: Raw, mallory: Database
) -> None:
    _, worker, lease = mallorys_lease(db, mallory, units_per_update=2)  # bound: 3 x 30 s
    raw.rows(
        "UPDATE leases SET claimed_at = now() - interval '80 seconds',"
        " expires_at = now() + interval '5 seconds' WHERE token = %(t)s"
        " RETURNING token",
        t=lease.token,
    )
    mallory.execute("extend_leases", worker_id=worker)
    left = raw.scalar(
        "SELECT extract(epoch FROM expires_at - now()) FROM leases WHERE token = %(t)s",
        t=lease.token,
    )
    assert 5 < left <= 10.5  # 90 s after the claim, not 30 s from now


def test_a_unit_a_student_let_time_out_goes_to_another_participant_not_back_to_them(
    db: Database, raw: Raw, mallory: Database
) -> None:
    run_id = new_run(db, units_per_update=1)
    first, second = workers_of(mallory, run_id, 2)
    honest = register(db, run_id, "honest")
    (lease,) = queue.claim(mallory, run_id, first)
    raw.expire_lease(lease.token)
    assert queue.claim(mallory, run_id, second) == []  # not theirs again
    taken = claim(db, run_id, honest)
    assert taken is not None and taken["unit_id"] == lease.unit_id


def test_a_student_alone_in_the_run_may_take_back_a_unit_they_let_time_out(
    db: Database, raw: Raw, mallory: Database
) -> None:
    run_id = new_run(db, units_per_update=1)
    first, second = workers_of(mallory, run_id, 2)
    (lease,) = queue.claim(mallory, run_id, first)
    raw.expire_lease(lease.token)
    raw.rows("UPDATE workers SET state = 'stopped' WHERE id = %(w)s RETURNING id", w=first)
    # No other participant is active: refusing would leave the unit to nobody.
    assert [c.unit_id for c in queue.claim(mallory, run_id, second)] == [lease.unit_id]


def test_a_student_cannot_fill_a_units_backup_places_with_their_own_workers(
    db: Database, mallory: Database
) -> None:
    run_id = new_run(db, units_per_update=1, max_backups=1)
    first, second = workers_of(mallory, run_id, 2)
    assert len(queue.claim(mallory, run_id, first)) == 1
    assert mallory.fetch_one("claim_backup_unit", run_id=run_id, worker_id=second) is None
    honest = register(db, run_id, "honest")
    assert claim_backup(db, run_id, honest) is not None  # the place is still free


def test_a_backup_place_comes_back_when_its_copy_is_given_back(
    db: Database, raw: Raw, mallory: Database
) -> None:
    run_id = new_run(db, units_per_update=1, max_backups=1)
    (worker,) = workers_of(mallory, run_id, 1)
    queue.claim(mallory, run_id, worker)
    helper, late = register(db, run_id, "helper"), register(db, run_id, "late")
    backup = claim_backup(db, run_id, helper)
    assert backup is not None
    assert claim_backup(db, run_id, late) is None  # 1 + max_backups students hold it
    db.execute("release_lease", token=backup["token"], worker_id=helper)
    assert claim_backup(db, run_id, late) is not None


def test_rejections_of_all_a_students_workers_quarantine_the_student(
    db: Database, mallory: Database, student: Student
) -> None:
    run_id = new_run(db, units_per_update=4, max_units_per_claim=4)
    workers = workers_of(mallory, run_id, 3)
    for worker in workers:  # one bad copy from each registration
        (lease,) = queue.claim(mallory, run_id, worker)
        upload = queue.Outgoing(
            lease, images=4, payload=b"junk", device_state=None, compute_seconds=0.1
        )
        assert queue.submit(mallory, run_id, worker, [upload]) == {lease.unit_id}
    for stored in queue.uploads(db, run_id, 0):
        queue.reject(db, run_id, stored, "test: not a result")
    for worker in workers:
        with pytest.raises(DatabaseError, match="quarantined"):
            queue.claim(mallory, run_id, worker)
    with pytest.raises(DatabaseError, match="quarantined"):
        workers_of(mallory, run_id, 1, name="fresh")
    (standing,) = db.fetch_all("student_standing", run_id=run_id)
    assert (standing["student"], standing["rejections"], standing["quarantined"]) == (
        student.name,
        3,
        True,
    )


def test_a_pardoned_student_may_claim_again(
    db: Database, raw: Raw, mallory: Database, student: Student
) -> None:
    run_id = new_run(db, units_per_update=2)
    (worker,) = workers_of(mallory, run_id, 1)
    raw.strike(run_id, worker, unit_index=0)
    with pytest.raises(DatabaseError, match="quarantined"):
        queue.claim(mallory, run_id, worker)
    db.execute("pardon_student", run_id=run_id, student=student.name)
    assert len(queue.claim(mallory, run_id, worker)) == 1


def test_a_quarantined_students_upload_is_not_stored(
    db: Database, raw: Raw, mallory: Database
) -> None:
    run_id, worker, lease = mallorys_lease(db, mallory, units_per_update=2)
    raw.strike(run_id, worker, unit_index=1)
    with pytest.raises(DatabaseError, match="quarantined"):
        queue.submit(
            mallory,
            run_id,
            worker,
            [queue.Outgoing(lease, images=4, payload=b"x", device_state=None, compute_seconds=0.1)],
        )
    assert raw.count("results") == 0


def test_a_student_has_at_most_eight_live_workers_and_dead_ones_do_not_count(
    db: Database, raw: Raw, mallory: Database
) -> None:
    run_id = new_run(db, units_per_update=2)
    workers = workers_of(mallory, run_id, 8)
    with pytest.raises(DatabaseError, match="8 live workers"):
        workers_of(mallory, run_id, 1, name="ninth")
    mallory.execute("worker_stopped", worker_id=workers[0])
    raw.rows(
        "UPDATE workers SET last_heartbeat = now() - interval '1 hour' WHERE id = %(w)s"
        " RETURNING id",
        w=workers[1],
    )
    assert len(workers_of(mallory, run_id, 2, name="restart")) == 2


def test_a_student_reads_the_standing_of_the_class(
    db: Database, mallory: Database, student: Student, db_url: str, class_admin: str
) -> None:
    run_id = new_run(db, units_per_update=2)
    workers_of(mallory, run_id, 1)
    other = new_student(db_url, class_admin)
    with Database(other.url, max_size=1) as theirs:
        rows = theirs.fetch_all("student_standing", run_id=run_id)
    assert [(r["student"], r["quarantined"]) for r in rows] == [(student.name, False)]


def test_the_instructors_workers_are_participants_of_their_own(db: Database, raw: Raw) -> None:
    run_id = new_run(db, units_per_update=4, max_units_per_claim=1)
    workers = [register(db, run_id, f"w{i}") for i in range(4)]
    # The owner runs many workers on purpose (the demo, benchmarks): no per-role cap on them.
    assert all(claim(db, run_id, w) is not None for w in workers)
    token = raw.scalar("SELECT token FROM leases WHERE worker_id = %(w)s", w=workers[0])
    assert submit(db, run_id, workers[0], token) is not None


def test_units_held_to_the_lease_bound_without_an_upload_are_strikes(
    db: Database, raw: Raw, mallory: Database
) -> None:
    run_id = new_run(db, units_per_update=3, lease_seconds=30.0)
    workers = workers_of(mallory, run_id, 3)
    for worker in workers:
        (lease,) = queue.claim(mallory, run_id, worker)
        raw.rows(  # heartbeaten all along, up to the bound (3 x 30 s), then let go
            "UPDATE leases SET claimed_at = now() - interval '100 seconds',"
            " expires_at = now() - interval '10 seconds' WHERE token = %(t)s RETURNING token",
            t=lease.token,
        )
    with pytest.raises(DatabaseError, match="quarantined"):
        queue.claim(mallory, run_id, workers[0])


def test_strikes_for_hoarding_outlive_the_version_they_held_up(
    db: Database, raw: Raw, mallory: Database, student: Student
) -> None:
    run_id, _, lease = mallorys_lease(db, mallory, units_per_update=3)
    raw.rows(
        "UPDATE leases SET claimed_at = now() - interval '100 seconds',"
        " expires_at = now() - interval '10 seconds' WHERE token = %(t)s RETURNING token",
        t=lease.token,
    )
    with db.transaction() as tx:  # what publishing the next version does with this one
        tx.execute("record_hoarding", run_id=run_id, version=0)
        tx.execute("delete_version_units", run_id=run_id, version=0)
    (standing,) = db.fetch_all("student_standing", run_id=run_id)
    assert (standing["student"], standing["rejections"]) == (student.name, 1)


def test_a_lease_that_merely_expired_is_no_strike(
    db: Database, raw: Raw, mallory: Database
) -> None:
    run_id = new_run(db, units_per_update=3)
    workers = workers_of(mallory, run_id, 3)
    for worker in workers:  # three laptops closed mid-unit
        (lease,) = queue.claim(mallory, run_id, worker)
        raw.expire_lease(lease.token)
    (standing,) = db.fetch_all("student_standing", run_id=run_id)
    assert (standing["timed_out"], standing["rejections"], standing["quarantined"]) == (
        3,
        0,
        False,
    )


def test_a_quarantined_students_leases_are_no_longer_extended(
    db: Database, raw: Raw, mallory: Database
) -> None:
    run_id, worker, lease = mallorys_lease(db, mallory, units_per_update=2)
    raw.expire_lease_in(lease.token, 2.0)
    raw.strike(run_id, worker, unit_index=1)
    mallory.execute("extend_leases", worker_id=worker)
    assert raw.scalar(
        "SELECT expires_at < now() + interval '3 seconds' FROM leases WHERE token = %(t)s",
        t=lease.token,
    )


def test_a_student_holding_every_table_they_can_read_does_not_stall_the_coordinators_vacuum(
    db: Database, raw: Raw, student: Student
) -> None:
    run_id = new_run(db, units_per_update=2)
    # Trailing empty pages in the blob tables: a VACUUM that truncates them would wait up to
    # 5 s for an ACCESS EXCLUSIVE lock that the student's ACCESS SHARE blocks.
    raw.rows("DELETE FROM weights WHERE run_id = %(r)s RETURNING version", r=run_id)
    squatter = squat_every_lock(student.url, run_id)
    try:
        started = time.monotonic()
        db.execute("vacuum_blob_tables")
        assert time.monotonic() - started < 2.5  # 5 s and more when it waits for the lock
    finally:
        squatter.close()
