"""The coordinator's run lock across a server restart, on a private embedded server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from ganfriends.db import Database, EmbeddedPostgres
from ganfriends.db.session_lock import LockLost

RUN_ID = 7


@pytest.fixture
def server(pg_dir: Path) -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres(pg_dir, durable=False)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _other_session_takes_the_lock(url: str) -> tuple[psycopg.Connection, bool]:
    conn = psycopg.connect(url, autocommit=True)
    row = conn.execute("SELECT pg_try_advisory_lock(7426001, %s)", (RUN_ID,)).fetchone()
    assert row is not None
    return conn, bool(row[0])


def test_the_lock_is_taken_again_after_a_server_restart(server: EmbeddedPostgres) -> None:
    url = server.start().local_url()
    with (
        Database(url, max_size=3, timeout=5) as db,
        db.advisory_lock("lock_run", "unlock_run", run_id=RUN_ID) as lock,
    ):
        assert lock.held
        server.stop()
        server.start()  # every session (and the lock with it) is gone

        lock.ensure()

        assert lock.held
        other, taken = _other_session_takes_the_lock(url)
        other.close()
        assert not taken  # held again, by us


def test_a_lock_taken_over_during_the_restart_is_reported_lost(server: EmbeddedPostgres) -> None:
    url = server.start().local_url()
    with (
        Database(url, max_size=3, timeout=5) as db,
        db.advisory_lock("lock_run", "unlock_run", run_id=RUN_ID) as lock,
    ):
        assert lock.held
        server.stop()
        server.start()
        other, taken = _other_session_takes_the_lock(url)  # a second coordinator, meanwhile
        try:
            assert taken
            with pytest.raises(LockLost):
                lock.ensure()
            assert not lock.held
        finally:
            other.close()


def test_ensure_keeps_a_live_lock_on_its_connection(server: EmbeddedPostgres) -> None:
    url = server.start().local_url()
    with Database(url, max_size=3, timeout=5) as db:
        with db.advisory_lock("lock_run", "unlock_run", run_id=RUN_ID) as lock:
            lock.ensure()
            lock.ensure()
            assert lock.held
        # Released once at the end of the block, however often it was checked.
        other, taken = _other_session_takes_the_lock(url)
        other.close()
        assert taken
