"""The coordinator's run lock across a server restart, on a private embedded server."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from ganfriends.db import Database, EmbeddedPostgres, migrate
from ganfriends.db.migrations import migration_lock
from ganfriends.db.session_lock import LockLost, SessionLock
from tests.integration.queue_helpers import new_run
from tests.integration.student_helpers import new_student

# Every table a student may read (admin.sql grant_class_access), and so may LOCK in ACCESS SHARE.
READABLE = (
    "runs", "weights", "version_inputs", "device_states", "workers", "work_units", "updates",
    "samples", "evaluations", "rejections", "pending_credit", "student_standing",
)  # fmt: skip


@pytest.fixture
def server(pg_dir: Path) -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres(pg_dir, durable=False)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def squat_every_lock(student_url: str, run_id: int) -> psycopg.Connection:
    """A student's session holding every lock their role can take, in a transaction left open:
    advisory locks on the keys ganfriends ever used (the old run lock, the old migrations lock)
    and on the run's id, ACCESS SHARE on every table they may read, and the lock a refused
    statement on the lock table leaves behind (taken before the privilege check)."""
    conn = psycopg.connect(student_url)
    conn.execute("SET idle_in_transaction_session_timeout = 0")
    for key in ("pg_advisory_lock(7426001, %(run)s::int)", "pg_advisory_lock(%(run)s::bigint)",
                "pg_advisory_lock(hashtext('ganfriends.migrations'))"):  # fmt: skip
        conn.execute(f"SELECT {key}", {"run": run_id})  # test-only SQL: the attacker's side
    for table in READABLE:
        conn.execute(f"LOCK TABLE ganfriends.{table} IN ACCESS SHARE MODE")
    for denied in ("SELECT ganfriends.take_run_lock(%(run)s)",
                   "SELECT * FROM ganfriends.run_locks FOR UPDATE",
                   "UPDATE ganfriends.run_locks SET holder_pid = pg_backend_pid()"):  # fmt: skip
        conn.execute("SAVEPOINT try")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(denied, {"run": run_id})
        conn.execute("ROLLBACK TO SAVEPOINT try")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):  # left aborted, locks held
        conn.execute("SELECT * FROM ganfriends.schema_migrations")
    return conn


def _class_run(url: str) -> int:
    with Database(url, max_size=2, timeout=5) as db:
        migrate(db)
        return new_run(db, units_per_update=1)


def _other_session_takes_the_lock(url: str, run_id: int) -> tuple[psycopg.Connection, bool]:
    """A second coordinator's attempt, on a session of its own."""
    conn = psycopg.connect(url, autocommit=True)
    row = conn.execute("SELECT ganfriends.take_run_lock(%s)", (run_id,)).fetchone()
    assert row is not None
    return conn, bool(row[0])


@contextmanager
def held_across_a_restart(server: EmbeddedPostgres) -> Iterator[tuple[str, int, SessionLock]]:
    """A run's lock held, then the server restarted: every session, the lock's with it, is gone.
    The server's URL, the run and the lock."""
    url = server.start().local_url()
    run_id = _class_run(url)
    with (
        Database(url, max_size=3, timeout=5) as db,
        db.session_lock("lock_run", "unlock_run", run_id=run_id) as lock,
    ):
        assert lock.held
        server.stop()
        server.start()
        yield url, run_id, lock


def test_the_lock_is_taken_again_after_a_server_restart(server: EmbeddedPostgres) -> None:
    with held_across_a_restart(server) as (url, run_id, lock):
        lock.ensure()

        assert lock.held
        other, taken = _other_session_takes_the_lock(url, run_id)
        other.close()
        assert not taken  # held again, by us


def test_a_lock_taken_over_during_the_restart_is_reported_lost(server: EmbeddedPostgres) -> None:
    with held_across_a_restart(server) as (url, run_id, lock):
        other, taken = _other_session_takes_the_lock(url, run_id)  # a second coordinator, meanwhile
        try:
            assert taken
            with pytest.raises(LockLost):
                lock.ensure()
            assert not lock.held
        finally:
            other.close()


def test_ensure_keeps_a_live_lock_on_its_connection(server: EmbeddedPostgres) -> None:
    url = server.start().local_url()
    run_id = _class_run(url)
    with Database(url, max_size=3, timeout=5) as db:
        with db.session_lock("lock_run", "unlock_run", run_id=run_id) as lock:
            lock.ensure()
            lock.ensure()
            assert lock.held
        # Released once at the end of the block, however often it was checked.
        other, taken = _other_session_takes_the_lock(url, run_id)
        other.close()
        assert taken


def test_a_student_squatting_every_lock_they_can_take_cannot_keep_the_run_from_its_coordinator(
    server: EmbeddedPostgres,
) -> None:
    info = server.start()
    url = info.local_url()
    run_id = _class_run(url)
    student = new_student(url, info.admin_url(str(conninfo_to_dict(url)["dbname"])))
    squatter = squat_every_lock(student.url, run_id)
    try:
        server.stop()
        server.start()  # the coordinator's lock must be taken again after a restart, too
        squatter.close()
        squatter = squat_every_lock(student.url, run_id)  # the student is first back
        with (
            Database(url, max_size=3, timeout=5) as db,
            db.session_lock("lock_run", "unlock_run", run_id=run_id) as lock,
        ):
            assert lock.held
            lock.ensure()
            with migration_lock(db) as tx:  # init-db's lock is not theirs to hold either
                tx.execute("server_now")
    finally:
        squatter.close()
