"""PostgreSQL: the embedded server, the connector, named queries and migrations.

Every process of a class talks only to the database. Nothing here opens a connection or a pool
at import time: a process creates its :class:`Database` after fork/spawn.
"""

from __future__ import annotations

from ganfriends.db.connection import Database, Tx, retrying
from ganfriends.db.errors import (
    AccessRefused,
    DatabaseError,
    DatabaseUnavailable,
    StoppedWaiting,
    UnknownQueryError,
)
from ganfriends.db.migrations import current_version, migrate, pending, reset
from ganfriends.db.server import EmbeddedPostgres, ServerInfo, default_data_dir

__all__ = [
    "AccessRefused",
    "Database",
    "DatabaseError",
    "DatabaseUnavailable",
    "EmbeddedPostgres",
    "ServerInfo",
    "StoppedWaiting",
    "Tx",
    "UnknownQueryError",
    "current_version",
    "default_data_dir",
    "migrate",
    "pending",
    "reset",
    "retrying",
]
