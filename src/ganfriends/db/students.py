"""Per-student login roles: each student gets a role of their own with only what a worker needs.

A class database has a group role ``<database>_students``; every student role is a member and
inherits its privileges (``admin.sql``: ``grant_class_access``): read the run, its weights and
inputs, and call the worker functions of migration 0007, which act only for workers the caller
registered. No table is writable by a student, leases and results are not even readable.

Everything here runs on an *admin* connection to the class database: the embedded server's
superuser over its socket, or the instructor's own role on another server (it needs CREATEROLE).
Statements come from ``admin.sql``; identifiers, the connection limit and the password verifier
are composed with :mod:`psycopg.sql`, never formatted into strings by hand.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql as pgsql

from ganfriends.db.admin import compose, connect
from ganfriends.db.connection import translate_error
from ganfriends.db.errors import DatabaseError
from ganfriends.db.sql import admin_queries
from ganfriends.errors import GanError

STUDENT_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")
PASSWORD_BYTES = 18  # 144 random bits, 24 url-safe characters
DEFAULT_CONNECTIONS = 5  # a worker: its pool (3) and its wake-up listener; a `status` beside it


class StudentError(GanError):
    """The student cannot be added, listed or revoked."""


@dataclass(frozen=True)
class Student:
    """One student role and what it did."""

    name: str
    can_login: bool
    connection_limit: int
    sessions: int
    workers: int
    units: int
    last_seen: datetime | None


def group_role(database: str) -> str:
    """The class's group role: every student role of ``database`` is a member."""
    return f"{database}_students"


def check_name(name: str) -> str:
    """``name`` if it can be a student's role name, else a one-line error."""
    if not STUDENT_NAME.fullmatch(name):
        raise StudentError(
            f"invalid student name {name!r}: lower-case letters, digits and _, starting with a "
            "letter, at most 40 characters"
        )
    return name


def _run(conn: psycopg.Connection[Any], query: str, /, **parts: pgsql.Composable) -> None:
    """Run a statement of ``admin.sql`` with its parts quoted by psycopg. Without parameters,
    the bytes go as one simple query, so a script of several statements runs whole."""
    conn.execute(compose(query, **parts).as_bytes(conn))


def _database(conn: psycopg.Connection[Any]) -> str:
    row = conn.execute("SELECT current_database()").fetchone()
    assert row is not None
    return str(row[0])


def grant_class_access(conn: psycopg.Connection[Any]) -> str:
    """Create the class's group role if needed and (re)apply its grants; the group's name."""
    database = _database(conn)
    group = group_role(database)
    if conn.execute(admin_queries()["group_exists"], {"group": group}).fetchone() is None:
        _run(conn, "create_group", group=pgsql.Identifier(group))
    _run(
        conn,
        "grant_class_access",
        group=pgsql.Identifier(group),
        database=pgsql.Identifier(database),
    )
    return group


def add_student(
    admin_url: str,
    name: str,
    *,
    max_connections: int = DEFAULT_CONNECTIONS,
    lock_databases: tuple[str, ...] = (),
) -> str:
    """Create the login role ``name`` in the class of ``admin_url``'s database; its password.

    ``lock_databases``: other databases of the server that PUBLIC may no longer connect to (the
    embedded server's ``postgres`` and ``template1``).
    """
    check_name(name)
    if max_connections < 1:
        raise StudentError("--max-connections must be at least 1")
    password = secrets.token_urlsafe(PASSWORD_BYTES)
    with connect(admin_url) as conn:
        try:
            if conn.execute(admin_queries()["role_exists"], {"role": name}).fetchone():
                raise StudentError(f"a role named {name!r} already exists: choose another name")
            group = grant_class_access(conn)
            for other in lock_databases:
                _run(conn, "revoke_connect", database=pgsql.Identifier(other))
            # The server only ever sees a SCRAM verifier computed by libpq, never the password.
            verifier = conn.pgconn.encrypt_password(
                password.encode(), name.encode(), b"scram-sha-256"
            ).decode()
            _run(
                conn,
                "create_student",
                role=pgsql.Identifier(name),
                password=pgsql.Literal(verifier),
                limit=pgsql.Literal(max_connections),
                group=pgsql.Identifier(group),
            )
        except psycopg.Error as exc:
            raise _refused(exc) from exc
    return password


def list_students(admin_url: str) -> list[Student]:
    """Every student of the class, with their workers and open sessions."""
    with connect(admin_url) as conn:
        try:
            group = group_role(_database(conn))
            roles = conn.execute(admin_queries()["student_roles"], {"group": group}).fetchall()
            work = {
                row[0]: row[1:]
                for row in conn.execute(admin_queries()["student_workers"]).fetchall()
            }
        except psycopg.Error as exc:
            raise _refused(exc) from exc
    students = []
    for name, can_login, limit, sessions in roles:
        workers, units, last_seen = work.get(name, (0, 0, None))
        students.append(
            Student(name, bool(can_login), int(limit), int(sessions), int(workers), int(units),
                    last_seen)
        )  # fmt: skip
    return students


def revoke_student(admin_url: str, name: str) -> int:
    """Remove ``name``'s access at once: no new login, open sessions ended, units given back.

    Returns how many of their units went back to the queue. The role and its workers' rows stay
    (the leaderboard keeps their history).
    """
    check_name(name)
    with connect(admin_url) as conn:
        try:
            group = group_role(_database(conn))
            members = {r[0] for r in conn.execute(admin_queries()["student_roles"],
                                                  {"group": group}).fetchall()}  # fmt: skip
            if name not in members:
                raise StudentError(f"{name!r} is not a student of this class")
            _run(conn, "disable_student", role=pgsql.Identifier(name))
            conn.execute(admin_queries()["end_student_sessions"], {"role": name})
            released = conn.execute(admin_queries()["release_student_leases"], {"role": name})
            return max(0, released.rowcount)
        except psycopg.Error as exc:
            raise _refused(exc) from exc


def _refused(exc: psycopg.Error) -> DatabaseError:
    error = translate_error(exc)
    if exc.sqlstate == "42501":  # insufficient_privilege
        return DatabaseError(
            f"{error}: managing students needs a role with CREATEROLE (the embedded server's "
            "own commands have it)"
        )
    return error
