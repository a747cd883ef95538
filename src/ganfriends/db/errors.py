"""Database errors: every ``psycopg`` error crosses our API as one of these."""

from __future__ import annotations

from ganfriends.errors import GanError


class DatabaseError(GanError):
    """The database reported an error."""

    def __init__(self, message: str | None = None, *, sqlstate: str | None = None) -> None:
        super().__init__(message)
        # The SQLSTATE code (e.g. "23505" for a unique violation) when the server sent one, so
        # callers can react to a specific condition without importing psycopg.
        self.sqlstate = sqlstate


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
