"""Database errors: every ``psycopg`` error crosses our API as one of these."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg_pool import PoolTimeout

from ganfriends.errors import GanError

# SQLSTATEs meaning "the server is (temporarily) not there", worth retrying: class 08 is
# connection exceptions; 57P01-57P03 are admin/crash shutdown and "starting up"; 53300 is
# too_many_connections (a class full of workers reconnecting at once).
_UNAVAILABLE_STATES = frozenset({"57P01", "57P02", "57P03", "53300"})


class DatabaseError(GanError):
    """The database reported an error."""

    def __init__(
        self, message: str | None = None, *, sqlstate: str | None = None, reason: str | None = None
    ) -> None:
        super().__init__(message)
        # The SQLSTATE code (e.g. "23505" for a unique violation) when the server sent one, so
        # callers can react to a specific condition without importing psycopg.
        self.sqlstate = sqlstate
        # The server's message alone, without our "database error [state]:" prefix: the line a
        # function wrote for the user (worker_register's version gate).
        self.reason = reason or str(self)


class DatabaseUnavailable(DatabaseError):
    """The database server cannot be reached; retry later."""


class StoppedWaiting(DatabaseUnavailable):
    """A stop was requested while :func:`ganfriends.db.retrying` waited out an outage."""


class AccessRefused(DatabaseError):
    """The database server refused this login (wrong password, unknown role or database)."""

    exit_status = 2  # not worth retrying: the URL itself is wrong


class UnknownQueryError(DatabaseError):
    """No named query has this name."""


class QueryFileError(DatabaseError):
    """A named-query file is malformed."""


class MigrationError(DatabaseError):
    """The migration files are inconsistent."""


def translate_error(exc: psycopg.Error) -> DatabaseError:
    """Map a psycopg error to a one-line :class:`DatabaseError` (or DatabaseUnavailable)."""
    message = " ".join(str(exc).split()) or type(exc).__name__
    state = exc.sqlstate
    if isinstance(exc, PoolTimeout):
        return DatabaseUnavailable(f"database unavailable: {message}")
    unavailable = (state is None and isinstance(exc, psycopg.OperationalError)) or (
        state is not None and (state.startswith("08") or state in _UNAVAILABLE_STATES)
    )
    if unavailable:
        return DatabaseUnavailable(f"database unavailable: {message}", sqlstate=state)
    prefix = f"database error [{state}]" if state else "database error"
    return DatabaseError(f"{prefix}: {message}", sqlstate=state, reason=exc.diag.message_primary)


@contextmanager
def translated() -> Iterator[None]:
    """Run the block with every psycopg error raised as :func:`translate_error` maps it."""
    try:
        yield
    except psycopg.Error as exc:
        raise translate_error(exc) from exc
