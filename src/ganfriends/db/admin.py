"""Role and database administration, run with a role allowed to create them.

The statements live in ``sql/admin.sql``; identifiers and the password verifier are composed
with :mod:`psycopg.sql` (quoted by psycopg), never formatted into strings by hand.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql as pgsql

from ganfriends.db.errors import translated
from ganfriends.db.sql import admin_queries


def compose(query: str, /, **parts: pgsql.Composable) -> pgsql.Composed:
    """A statement of ``admin.sql`` with its identifiers and literals quoted by psycopg."""
    return pgsql.SQL(admin_queries()[query]).format(**parts)


def connect(url: str) -> psycopg.Connection[Any]:
    """An autocommit connection for administration; errors become :class:`DatabaseError`."""
    with translated():
        # Autocommit: CREATE/DROP DATABASE cannot run inside a transaction block.
        return psycopg.connect(url, autocommit=True, connect_timeout=10)


def bootstrap(admin_url: str, role: str, password: str, database: str) -> None:
    """Ensure the login ``role`` (with ``password``) and ``database`` owned by it exist."""
    with connect(admin_url) as conn, translated():
        # The server only ever sees a SCRAM verifier computed by libpq, never the password.
        verifier = conn.pgconn.encrypt_password(
            password.encode(), role.encode(), b"scram-sha-256"
        ).decode()
        parts = {"role": pgsql.Identifier(role), "password": pgsql.Literal(verifier)}
        found = conn.execute(admin_queries()["role_exists"], {"role": role}).fetchone()
        conn.execute(compose("set_role_password" if found else "create_role", **parts))
        conn.execute(compose("grant_instructor_powers", role=pgsql.Identifier(role)))
        found = conn.execute(admin_queries()["database_exists"], {"name": database}).fetchone()
        if not found:
            conn.execute(
                compose(
                    "create_database",
                    name=pgsql.Identifier(database),
                    owner=pgsql.Identifier(role),
                )
            )


def create_database(admin_url: str, name: str, *, owner: str, template: str | None = None) -> None:
    """``CREATE DATABASE name [TEMPLATE template] OWNER owner``."""
    parts: dict[str, pgsql.Composable] = {
        "name": pgsql.Identifier(name),
        "owner": pgsql.Identifier(owner),
    }
    if template is not None:
        parts["template"] = pgsql.Identifier(template)
    query = "create_database" if template is None else "create_database_from_template"
    with connect(admin_url) as conn, translated():
        conn.execute(compose(query, **parts))


def drop_database(admin_url: str, name: str) -> None:
    """Drop a database if it exists, disconnecting its sessions."""
    with connect(admin_url) as conn, translated():
        conn.execute(compose("drop_database", name=pgsql.Identifier(name)))


def current_user(url: str) -> str:
    """The role a URL logs in as."""
    with connect(url) as conn, translated():
        row = conn.execute(admin_queries()["current_user"]).fetchone()
    assert row is not None
    return str(row[0])
