"""The one thin connector: a psycopg 3 connection pool that runs named queries.

Callers pass the *name* of a query from ``queries.sql`` and named parameters; rows come back as
dicts. Every psycopg error becomes a :class:`DatabaseError`, and losing the server becomes a
:class:`DatabaseUnavailable` that callers retry with :func:`retrying`.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from ganfriends.db import sql
from ganfriends.db.errors import (
    AccessRefused,
    DatabaseError,
    DatabaseUnavailable,
    StoppedWaiting,
    UnknownQueryError,
    translate_error,
    translated,
)
from ganfriends.db.notifications import Listener
from ganfriends.db.session_lock import SessionLock

T = TypeVar("T")
Row = dict[str, Any]

SCHEMA = "ganfriends"
CONNECT_TIMEOUT = 10  # seconds, per connection attempt (libpq connect_timeout)
POOL_TIMEOUT = 10.0  # seconds a caller waits for a pooled connection before DatabaseUnavailable
RETRY_FIRST_DELAY = 0.5  # seconds
RETRY_FACTOR = 2.0
RETRY_MAX_DELAY = 30.0  # seconds

# libpq reports a refused login without a SQLSTATE (the server's FATAL message is all we get):
# these are the server's English texts for a wrong password, an unknown role or database and a
# pg_hba.conf refusal. A server speaking another language falls back to "unreachable, retrying".
_REFUSALS = (
    "password authentication failed",
    "authentication failed for user",
    "no password supplied",
    "no pg_hba.conf entry",
    "does not exist",
    "permission denied for database",
    "is not permitted to log in",  # a revoked student's role (NOLOGIN)
)
PROBE_TIMEOUT = 5  # seconds for the one direct connection that explains a pool timeout


def login_refusal(conninfo: str) -> AccessRefused | None:
    """Connect once, directly: an :class:`AccessRefused` if the server refuses this login, None
    if it accepts it or cannot be reached (the pool's timeout then means an outage)."""
    try:
        psycopg.connect(conninfo, connect_timeout=PROBE_TIMEOUT, autocommit=True).close()
    except psycopg.OperationalError as exc:
        message = " ".join(str(exc).split())
        if any(text in message for text in _REFUSALS):
            reason = message[message.find("FATAL:") :] if "FATAL:" in message else message
            return AccessRefused(
                f"the database refused this login ({reason}): check the URL "
                "(each student's own comes from `ganfriends students add NAME`, the "
                "instructor's from `ganfriends db url`)"
            )
    return None


def _normalise(row: Row) -> Row:
    # bytea may arrive as memoryview depending on the loader; callers always get bytes.
    for key, value in row.items():
        if isinstance(value, memoryview):
            row[key] = value.tobytes()
    return row


class _Runner:
    """Runs named queries on one connection; shared by :class:`Tx` and the autocommit helpers.

    Rows come in PostgreSQL's binary format: a bytea blob (weights, results) crosses the wire as
    its bytes, not as hex text of twice the size, and needs no decoding.
    """

    def __init__(self, conn: psycopg.Connection[Any], queries: Mapping[str, str]) -> None:
        self._conn = conn
        self._queries = queries

    def _sql(self, name: str) -> str:
        try:
            return self._queries[name]
        except KeyError:
            raise UnknownQueryError(f"unknown query name {name!r} (not in queries.sql)") from None

    def fetch_one(self, query: str, /, **params: Any) -> Row | None:
        """Run a named query and return its first row, or None."""
        text = self._sql(query)
        with translated(), self._conn.cursor(row_factory=dict_row, binary=True) as cur:
            row = cur.execute(text, params).fetchone()
        return None if row is None else _normalise(row)

    def fetch_all(self, query: str, /, **params: Any) -> list[Row]:
        """Run a named query and return all its rows."""
        text = self._sql(query)
        with translated(), self._conn.cursor(row_factory=dict_row, binary=True) as cur:
            rows = cur.execute(text, params).fetchall()
        return [_normalise(row) for row in rows]

    def fetch_each(self, query: str, params: Sequence[Mapping[str, Any]]) -> list[Row | None]:
        """Run a named query once per parameter set, pipelined (one round trip for all), and
        return each run's first row, or None."""
        text = self._sql(query)
        rows: list[Row | None] = []
        if not params:
            return rows
        with translated(), self._conn.cursor(row_factory=dict_row, binary=True) as cur:
            cur.executemany(text, params, returning=True)
            while True:
                row = cur.fetchone()
                rows.append(None if row is None else _normalise(row))
                if not cur.nextset():
                    break
        return rows

    def execute(self, query: str, /, **params: Any) -> int:
        """Run a named statement and return its rowcount (-1 when not applicable)."""
        text = self._sql(query)
        with translated(), self._conn.cursor() as cur:
            cur.execute(text, params)
            return cur.rowcount


class Tx(_Runner):
    """An open transaction: ``fetch_one``/``fetch_all``/``execute`` run inside it."""

    def run_script(self, script: str) -> None:
        """Run a whole SQL file (several statements, no parameters): used by migrations."""
        with translated(), self._conn.cursor() as cur:
            # No parameters: psycopg sends the text as one simple query, so it may hold
            # several statements and literal percent signs.
            cur.execute(script.encode())


def _conninfo(url: str, application_name: str) -> str:
    try:
        existing = conninfo_to_dict(url).get("options") or ""
        # Our tables live in schema "ganfriends"; keep any options the URL already carries.
        options = f"{existing} -c search_path={SCHEMA},public".strip()
        return make_conninfo(
            url,
            application_name=application_name,
            connect_timeout=CONNECT_TIMEOUT,
            options=options,
        )
    except psycopg.Error as exc:
        raise DatabaseError(f"invalid database URL: {' '.join(str(exc).split())}") from exc


class Database:
    """A connection pool to one database, running named queries.

    Create it in the process that uses it (after fork/spawn) and close it when done; it is
    thread-safe. ``fetch_one``/``fetch_all``/``execute`` each run in their own transaction;
    use :meth:`transaction` to group statements.
    """

    def __init__(
        self,
        url: str,
        *,
        min_size: int = 1,
        max_size: int = 4,
        application_name: str = "ganfriends",
        timeout: float = POOL_TIMEOUT,
        queries: Mapping[str, str] | None = None,
    ) -> None:
        self._queries: Mapping[str, str] = queries if queries is not None else sql.queries()
        self._pid = os.getpid()
        self._conninfo = _conninfo(url, application_name)
        # check_connection runs on every checkout, so a connection broken by a server restart is
        # discarded and replaced instead of failing the caller's first statement. Autocommit:
        # single statements commit at once; transaction() opens an explicit BEGIN/COMMIT block.
        self._pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            self._conninfo,
            min_size=min_size,
            max_size=max_size,
            open=True,
            check=ConnectionPool.check_connection,
            kwargs={"autocommit": True},
            timeout=timeout,
            name=application_name,
        )

    def close(self) -> None:
        """Close every connection of the pool; the Database cannot be used afterwards."""
        self._pool.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        if os.getpid() != self._pid:
            # A pool's sockets and threads do not survive fork: sharing them would interleave
            # two processes' traffic on one connection.
            raise DatabaseError("a Database cannot be used across fork; create one per process")
        try:
            with self._pool.connection() as conn:
                yield conn
        except PoolTimeout as exc:
            # The pool cannot say why it has no connection: a refused login is not an outage,
            # and retrying it forever would hide a wrong password or database name.
            refusal = login_refusal(self._conninfo)
            if refusal is not None:
                raise refusal from exc
            raise

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        """One connection, one transaction: commit on success, roll back on exception."""
        try:
            with self._connection() as conn, conn.transaction():
                yield Tx(conn, self._queries)
        except psycopg.Error as exc:  # checkout, BEGIN, COMMIT or ROLLBACK failed
            raise translate_error(exc) from exc

    @contextmanager
    def _autocommit(self) -> Iterator[_Runner]:
        try:
            with self._connection() as conn:
                yield _Runner(conn, self._queries)
        except psycopg.Error as exc:
            raise translate_error(exc) from exc

    @contextmanager
    def session_lock(
        self, lock_query: str, unlock_query: str, /, **params: Any
    ) -> Iterator[SessionLock]:
        """Try to take a lock held by a session, on a connection of its own, for the block.

        Yields the :class:`SessionLock`: ``held`` says whether it was taken (``lock_query`` must
        return one boolean); ``ensure()`` re-takes it after a server restart. The lock lives as
        long as its connection, so a holder that is killed releases it at once.
        """
        if os.getpid() != self._pid:
            raise DatabaseError("a Database cannot be used across fork; create one per process")
        lock = SessionLock(self._pool, self._queries, lock_query, unlock_query, params)
        lock.acquire()
        try:
            yield lock
        finally:
            lock.release()

    def listener(self, listen_query: str) -> Listener:
        """A :class:`Listener` on a connection of its own, LISTENing as ``listen_query`` says."""
        return Listener(self._conninfo, self._queries[listen_query])

    def fetch_one(self, query: str, /, **params: Any) -> Row | None:
        """Run a named query in its own transaction and return its first row, or None."""
        with self._autocommit() as runner:
            return runner.fetch_one(query, **params)

    def fetch_all(self, query: str, /, **params: Any) -> list[Row]:
        """Run a named query in its own transaction and return all its rows."""
        with self._autocommit() as runner:
            return runner.fetch_all(query, **params)

    def fetch_each(self, query: str, params: Sequence[Mapping[str, Any]]) -> list[Row | None]:
        """Run a named query once per parameter set, pipelined in one round trip and one
        transaction; each run's first row, or None."""
        with self.transaction() as tx:
            return tx.fetch_each(query, params)

    def execute(self, query: str, /, **params: Any) -> int:
        """Run a named statement in its own transaction and return its rowcount."""
        with self._autocommit() as runner:
            return runner.execute(query, **params)


def retrying(
    fn: Callable[[], T],
    *,
    on_retry: Callable[[int, float, Exception], None] | None = None,
    max_wait: float = float("inf"),
    sleep: Callable[[float], None] = time.sleep,
    stop: threading.Event | None = None,
) -> T:
    """Call ``fn`` until it does not raise :class:`DatabaseUnavailable`, backing off: the one
    retry loop of the worker, the coordinator and the CLI.

    Waits 0.5 s, 1 s, 2 s, ... (capped at 30 s) between attempts and calls
    ``on_retry(attempt, delay, exc)`` before each wait. Gives up, re-raising the last error,
    once the next wait would take the total time slept past ``max_wait`` seconds. Other errors
    propagate at once. With ``stop``, a wait ends as soon as it is set and
    :class:`StoppedWaiting` is raised: nothing can be handed back to a database we cannot reach.
    ``fn`` should be idempotent: when the connection drops during COMMIT, whether the transaction
    committed is unknown.
    """
    delay = RETRY_FIRST_DELAY
    slept = 0.0
    attempt = 0
    while True:
        try:
            return fn()
        except DatabaseUnavailable as exc:
            if stop is not None and stop.is_set():
                raise StoppedWaiting(str(exc)) from exc
            attempt += 1
            if slept + delay > max_wait:
                raise
            if on_retry is not None:
                on_retry(attempt, delay, exc)
            if stop is None:
                sleep(delay)
            elif stop.wait(delay):
                raise StoppedWaiting(str(exc)) from exc
            slept += delay
            delay = min(delay * RETRY_FACTOR, RETRY_MAX_DELAY)
