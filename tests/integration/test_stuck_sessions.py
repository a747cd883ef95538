"""A student who holds a transaction open cannot stall the run: the coordinator's watchdog ends
the session, and a publish that meets such a lock gives up after lock_timeout instead of hanging.

A student can SET their own ``idle_in_transaction_session_timeout`` back to 0, so the server's
timeouts do not cover a hostile student; these tests do exactly that.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import psycopg
import pytest
from rich.console import Console

from ganfriends.classroom import queue
from ganfriends.classroom.coordinator import Coordinator
from ganfriends.classroom.payload import encode_result
from ganfriends.classroom.state import load_run_state
from ganfriends.config import Config
from ganfriends.db import Database, DatabaseError
from tests.integration.queue_helpers import (
    Raw,
    claim,
    new_run,
    random_result,
    register,
    submit,
    tiny_models,
)
from tests.integration.student_helpers import HARDWARE, Student, wait_for_transaction_age


@pytest.fixture
def hostile(student: Student) -> Iterator[psycopg.Connection]:
    """The student's own session, with the server's idle-in-transaction timeout switched off."""
    conn = psycopg.connect(student.url, autocommit=True)
    conn.execute("SET idle_in_transaction_session_timeout = 0")
    yield conn
    conn.close()


def _student_worker(student: Student, run_id: int) -> int:
    with Database(student.url, max_size=1) as mine:
        return queue.register_worker(mine, run_id, "mallory", "laptop", HARDWARE)


def _alive(conn: psycopg.Connection) -> bool:
    try:
        conn.execute("SELECT 1")
        return True
    except psycopg.OperationalError:
        return False


def test_a_claim_held_open_stalls_the_unit_until_the_watchdog_ends_it(
    db: Database, db_url: str, student: Student, hostile: psycopg.Connection
) -> None:
    # Prepare: the student claims the only unit inside a transaction and never commits.
    run_id = new_run(db, units_per_update=1)
    mallory = _student_worker(student, run_id)
    honest = register(db, run_id, "honest")
    hostile.execute("BEGIN")
    hostile.execute(
        "SELECT * FROM ganfriends.worker_claim_unit(%s::bigint, %s::bigint)", (run_id, mallory)
    )
    assert claim(db, run_id, honest) is None  # the locked unit is skipped by everyone else
    wait_for_transaction_age(db_url, hostile, 0.1)

    # Execute: the watchdog, with a threshold the transaction has passed.
    ended = queue.end_stuck_student_sessions(db, seconds=0.1)

    # Assert: that session (only) is gone, its claim rolled back, the unit free again.
    assert [s.role for s in ended] == [student.name]
    assert not _alive(hostile)
    again = claim(db, run_id, honest)
    assert again is not None and again["unit_index"] == 0


def test_a_statement_sleeping_on_a_claim_is_ended(
    db: Database, db_url: str, student: Student, hostile: psycopg.Connection
) -> None:
    run_id = new_run(db, units_per_update=1)
    mallory = _student_worker(student, run_id)
    failure: list[BaseException] = []

    def sleep_on_the_unit() -> None:
        try:
            hostile.execute(
                "SELECT * FROM ganfriends.worker_claim_unit(%s::bigint, %s::bigint), pg_sleep(600)",
                (run_id, mallory),
            )
        except psycopg.OperationalError as exc:
            failure.append(exc)

    thread = threading.Thread(target=sleep_on_the_unit)
    thread.start()
    wait_for_transaction_age(db_url, hostile, 0.1)  # the statement, in its sleep

    ended = queue.end_stuck_student_sessions(db, seconds=0.1)
    thread.join(timeout=10)

    assert [s.role for s in ended] == [student.name]
    assert failure and not thread.is_alive()


def test_sessions_outside_a_transaction_and_young_ones_are_left_alone(
    db: Database, student: Student, hostile: psycopg.Connection, raw: Raw
) -> None:
    run_id = new_run(db, units_per_update=1)
    _student_worker(student, run_id)
    idle_owner = psycopg.connect(raw.conn.info.dsn, autocommit=True)
    idle_owner.execute("BEGIN")  # the owner's own sessions are never the watchdog's business
    try:
        wait_for_transaction_age(raw.conn.info.dsn, idle_owner, 0.1)
        assert queue.end_stuck_student_sessions(db, seconds=0.1) == []
        hostile.execute("BEGIN")
        assert queue.end_stuck_student_sessions(db, seconds=60) == []  # too young
        assert _alive(hostile) and _alive(idle_owner)
    finally:
        idle_owner.close()


def test_a_publish_blocked_by_a_students_lock_gives_up_instead_of_hanging(
    db: Database, raw: Raw, student: Student, hostile: psycopg.Connection
) -> None:
    # Prepare: the unit is done (an honest copy), and the student, holding a backup lease on it,
    # heartbeats inside a transaction it keeps open: the unit's row stays locked.
    run_id = new_run(db, units_per_update=1)
    honest = register(db, run_id, "honest")
    mallory = _student_worker(student, run_id)
    lease = claim(db, run_id, honest)
    assert lease is not None
    hostile.execute("BEGIN")
    hostile.execute(
        "SELECT * FROM ganfriends.worker_claim_backup_unit(%s::bigint, %s::bigint)",
        (run_id, mallory),
    )
    hostile.execute("COMMIT")
    honest_blob = encode_result(random_result(*tiny_models(), seed=1))
    assert submit(db, run_id, honest, lease["token"], honest_blob) is not None
    hostile.execute("BEGIN")
    hostile.execute("SELECT ganfriends.worker_extend_leases(%s::bigint)", (mallory,))
    coordinator = Coordinator(db, Config(), console=Console(quiet=True))
    state = load_run_state(db, run_id)
    valid = coordinator.validated_results(state)
    assert valid is not None

    # Execute
    started = time.monotonic()
    with pytest.raises(DatabaseError) as refused:
        coordinator.apply_update(state, valid, 0.0)

    # Assert: lock_timeout, within seconds; nothing was published.
    assert refused.value.sqlstate == "55P03"
    assert time.monotonic() - started < 15
    assert raw.scalar("SELECT version FROM runs WHERE id = %(id)s", id=run_id) == 0
