"""Which database a command talks to.

``--db URL`` / ``GANFRIENDS_DATABASE_URL`` / the config's database section name one explicitly.
With none of them, the instructor's commands (init-db, coordinator, status, demo) use the embedded
PostgreSQL in our data directory, starting it if needed; a worker only uses one that is already
running on this machine, since a student's worker must reach the instructor's database.
"""

from __future__ import annotations

from psycopg.conninfo import make_conninfo

from ganfriends.config import Config
from ganfriends.db import Database, EmbeddedPostgres, default_data_dir
from ganfriends.errors import ConfigError


def configured_url(config: Config) -> str | None:
    """The database the config names explicitly, or None."""
    db = config.database
    if db.url:
        return db.url
    if db.host:
        return make_conninfo(
            host=db.host,
            port=db.port,
            dbname=db.database,
            user=db.user,
            password=db.password or None,
        )
    return None


def embedded_url(*, start: bool) -> str | None:
    """The local embedded server's URL (started on demand when ``start``)."""
    server = EmbeddedPostgres(default_data_dir())
    info = server.status()
    if info is None and start:
        info = server.start()
    return None if info is None else info.local_url()


def resolve_url(config: Config, *, start_embedded: bool) -> str:
    """The URL a command should use (see the module docstring)."""
    url = configured_url(config) or embedded_url(start=start_embedded)
    if url is None:
        raise ConfigError(
            "no database configured: set GANFRIENDS_DATABASE_URL to your own URL (a student's "
            "comes from the instructor's `ganfriends students add NAME`; the instructor's from "
            "`ganfriends db url`), pass --db URL, or fill the database section of config.yaml"
        )
    return url


OUTAGE_NOTICE = 3.0  # seconds without a connection before a long-running command says so


def open_database(config: Config, *, start_embedded: bool, max_size: int = 4) -> Database:
    """An open connection pool on the resolved database.

    A short pool timeout: when the server goes away, callers get ``DatabaseUnavailable`` within
    seconds, tell the user, and retry with backoff instead of hanging silently.
    """
    return Database(
        resolve_url(config, start_embedded=start_embedded), max_size=max_size, timeout=OUTAGE_NOTICE
    )
