"""A lock held by a session, that survives a server restart or says it was taken over.

The lock (``lock_run``: a row of ``run_locks`` naming the holding session, migration 0011) lives
as long as its connection: a holder that is killed releases it at once, which is what makes it
the right lock for "one coordinator per run". It is not an advisory lock: any role may take any
advisory lock key, so a student could squat it. A server restart ends every session, so the
holder silently stops holding it, and a second coordinator started during the outage could take
it. :meth:`SessionLock.ensure` checks the lock's connection; when it is
gone it takes the lock again on a new one, or raises :class:`LockLost` when another session holds
it now.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import suppress
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from ganfriends.db.errors import DatabaseError, DatabaseUnavailable, translate_error

LOCK_CHECK = "SELECT 1"  # a round trip on the lock's own connection: is the session alive?


class LockLost(DatabaseError):
    """The lock's session ended (a server restart) and another session holds the lock now."""


class SessionLock:
    """``lock_query`` (one boolean: taken or not) held on a pooled connection of its own."""

    def __init__(
        self,
        pool: ConnectionPool[psycopg.Connection[Any]],
        queries: Mapping[str, str],
        lock_query: str,
        unlock_query: str,
        params: Mapping[str, Any],
    ) -> None:
        self._pool = pool
        self._lock_sql = queries[lock_query]
        self._unlock_sql = queries[unlock_query]
        self._params = dict(params)
        self._conn: psycopg.Connection[Any] | None = None
        self.held = False

    def acquire(self) -> bool:
        """Try to take the lock on a fresh connection; whether it was taken."""
        try:
            conn = self._pool.getconn()
        except PoolTimeout as exc:
            raise DatabaseUnavailable(f"database unavailable: {exc}") from exc
        try:
            row = conn.execute(self._lock_sql, self._params).fetchone()
        except psycopg.Error as exc:
            self._pool.putconn(conn)
            raise translate_error(exc) from exc
        if not (row and row[0]):
            self._pool.putconn(conn)
            return False
        self._conn, self.held = conn, True
        return True

    def ensure(self) -> None:
        """Check that the lock is still held; take it again after a server restart.

        Raises :class:`LockLost` when another session took it meanwhile, and
        :class:`DatabaseUnavailable` while the server cannot be reached (call again later).
        """
        if self._conn is not None:
            try:
                self._conn.execute(LOCK_CHECK)
                return
            except psycopg.Error:
                self._drop()  # the session (and with it the lock) is gone
        if not self.acquire():
            raise LockLost("the lock was lost with its session and another session holds it now")

    def release(self) -> None:
        """Release the lock and give its connection back."""
        if self._conn is not None:
            with suppress(psycopg.Error):
                self._conn.execute(self._unlock_sql, self._params)
            self._drop()

    def _drop(self) -> None:
        conn, self._conn, self.held = self._conn, None, False
        if conn is not None:
            # A broken connection is discarded by the pool, a healthy one reused.
            self._pool.putconn(conn)
