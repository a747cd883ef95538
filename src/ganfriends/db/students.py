"""Per-student login roles: each student gets a role of their own with only what a worker needs.

A class database has a group role ``<database>_students``; every student role is a member and
inherits its privileges (``admin.sql``: ``grant_class_access``): read the run, its weights and
inputs, and call the worker functions of migration 0007, which act only for workers the caller
registered. No table is writable by a student, leases and results are not even readable.

Everything here runs on an *admin* connection to the class database: the embedded server's
superuser over its socket, or the instructor's own role on another server (it needs CREATEROLE).
Statements come from ``admin.sql``; identifiers, the connection limit and the password verifier
are composed with :mod:`psycopg.sql`, never formatted into strings by hand.

On a server the instructor does not own as superuser (a managed PostgreSQL), the instructor's
role usually lacks ``pg_read_all_stats`` and ``pg_signal_backend``: it could neither see what a
student's session is doing nor end it. PostgreSQL grants both to members of the session's role,
so ``students add`` makes the instructor's role a member of each student's role
(``reach_student``); what such a server still cannot give is named by :func:`server_limits`.
A whole class at once (a roster, ``revoke --all``) is :mod:`ganfriends.db.roster`.
"""

from __future__ import annotations

import functools
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePath
from typing import Any
from urllib.parse import quote, urlencode

import psycopg
from psycopg import sql as pgsql
from psycopg.conninfo import conninfo_to_dict

from ganfriends.db.admin import compose, connect
from ganfriends.db.errors import DatabaseError, translate_error
from ganfriends.db.sql import admin_queries, queries
from ganfriends.errors import GanError

STUDENT_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")
PASSWORD_BYTES = 18  # 144 random bits, 24 url-safe characters
DEFAULT_CONNECTIONS = 5  # a worker: its pool (3) and its wake-up listener; a `status` beside it
# sslmode values that let a connection go unencrypted, or encrypted without a checked server.
UNCHECKED_TLS = ("disable", "allow", "prefer")
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


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
    check_connections(max_connections)
    password = new_password()
    with connect(admin_url) as conn:
        try:
            with conn.transaction():
                group = open_class(conn, lock_databases)
                if conn.execute(admin_queries()["role_exists"], {"role": name}).fetchone():
                    raise StudentError(f"a role named {name!r} already exists: choose another name")
                create_student(conn, name, password, group=group, max_connections=max_connections)
                reach_students(conn)
        except psycopg.Error as exc:
            raise refused(exc) from exc
    return password


def check_connections(max_connections: int) -> None:
    """Refuse a connection limit no worker could run under."""
    if max_connections < 1:
        raise StudentError("--max-connections must be at least 1")


def new_password() -> str:
    """A fresh random password for a student's role."""
    return secrets.token_urlsafe(PASSWORD_BYTES)


def open_class(conn: psycopg.Connection[Any], lock_databases: tuple[str, ...] = ()) -> str:
    """In the caller's transaction: wait for any other `students` command on this class, then
    (re)apply the class's grants; the group's name. Held to the end of the transaction, the lock
    lets two commands adding the same students run at once: the second finds them created
    (without it, both find a name free and one fails on it, and two GRANTs on one object at once
    fail with "tuple concurrently updated")."""
    _run(conn, "class_lock")
    group = grant_class_access(conn)
    for other in lock_databases:
        _run(conn, "revoke_connect", database=pgsql.Identifier(other))
    return group


def create_student(
    conn: psycopg.Connection[Any], name: str, password: str, *, group: str, max_connections: int
) -> None:
    """Create the login role ``name``, a member of ``group``, that logs in with ``password``."""
    # The server only ever sees a SCRAM verifier computed by libpq, never the password.
    _run(
        conn,
        "create_student",
        role=pgsql.Identifier(name),
        password=pgsql.Literal(_verifier(conn, name, password)),
        limit=pgsql.Literal(max_connections),
        group=pgsql.Identifier(group),
    )


def _verifier(conn: psycopg.Connection[Any], name: str, password: str) -> str:
    return conn.pgconn.encrypt_password(password.encode(), name.encode(), b"scram-sha-256").decode()


def class_members(conn: psycopg.Connection[Any]) -> dict[str, bool]:
    """The students of the class of ``conn``'s database: name -> whether they may log in."""
    group = group_role(_database(conn))
    rows = conn.execute(admin_queries()["student_roles"], {"group": group}).fetchall()
    return {str(row[0]): bool(row[1]) for row in rows}


def reissue_student(admin_url: str, name: str) -> str:
    """A new password for student ``name`` (their old URL stops working), and login allowed
    again if they were revoked; the password."""
    check_name(name)
    password = new_password()
    with connect(admin_url) as conn:
        try:
            if name not in class_members(conn):
                raise StudentError(f"{name!r} is not a student of this class")
            _run(
                conn,
                "reissue_student",
                role=pgsql.Identifier(name),
                password=pgsql.Literal(_verifier(conn, name, password)),
            )
        except psycopg.Error as exc:
            raise refused(exc) from exc
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
            raise refused(exc) from exc
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
            if name not in class_members(conn):
                raise StudentError(f"{name!r} is not a student of this class")
            return revoke(conn, name)
        except psycopg.Error as exc:
            raise refused(exc) from exc


def revoke(conn: psycopg.Connection[Any], name: str) -> int:
    """Revoke the class member ``name`` on an autocommit connection (see
    :func:`revoke_student`); how many of their units went back to the queue."""
    _run(conn, "disable_student", role=pgsql.Identifier(name))
    reach_students(conn)
    try:
        conn.execute(admin_queries()["end_student_sessions"], {"role": name})
    except psycopg.errors.InsufficientPrivilege as exc:
        # Their leases stay: a session of theirs may hold the rows' locks, and releasing
        # would wait on it. The leases expire by themselves.
        raise StudentError(
            f"{name} can no longer log in, but their open sessions could not be ended "
            f"({translate_error(exc)}): their units go back to the queue when their "
            "leases expire"
        ) from exc
    released = conn.execute(admin_queries()["release_student_leases"], {"role": name})
    return max(0, released.rowcount)


def reach_students(conn: psycopg.Connection[Any]) -> None:
    """Make this role a member of each student's role whose sessions it could not end (see the
    module docstring): the new students', and those added before by another version or role."""
    for (student,) in conn.execute(queries()["students_out_of_reach"]).fetchall():
        try:
            # A savepoint: inside the caller's transaction, a refused grant must not abort it.
            with conn.transaction():
                _run(conn, "reach_student", role=pgsql.Identifier(student))
        except psycopg.errors.InsufficientPrivilege:
            # Not this role's to grant (another instructor created it): the coordinator's
            # watchdog names the students it cannot reach, and revoke says what it could not do.
            continue


def student_url(instructor_url: str, name: str, password: str) -> str:
    """The URL a student connects with: the instructor's server and database, as ``name``.

    Host, port and database are the ones the instructor's connection actually reached (a URL
    may leave them to libpq's defaults). TLS as :func:`student_tls` decides.
    """
    return student_url_maker(instructor_url)(name, password)


def student_url_maker(instructor_url: str) -> Callable[[str, str], str]:
    """:func:`student_url` for many students: (name, password) -> URL, connecting once."""
    with connect(instructor_url) as conn:
        info = conn.info
        tls_in_use = bool(conn.pgconn.ssl_in_use)
        host, port, database = info.host, info.port, info.dbname
    sslmode, sslrootcert = student_tls(instructor_url, tls_in_use=tls_in_use)
    return functools.partial(
        format_student_url, host=host, port=port, database=database, sslmode=sslmode,
        sslrootcert=sslrootcert,
    )  # fmt: skip


def student_tls(instructor_url: str, *, tls_in_use: bool) -> tuple[str, str | None]:
    """The ``sslmode`` (and ``sslrootcert``) for a student's URL, from the instructor's URL.

    A checking mode (``require``, ``verify-ca``, ``verify-full``) is kept. A mode that allows
    plaintext (none given, ``prefer``, ``allow``) becomes ``require`` when the instructor's
    connection is encrypted: the server has TLS, and a student's URL should not let an impostor
    without it take their password. Otherwise it stays (``prefer`` when none was given: libpq's
    default, said out loud). A certificate file becomes its bare name: students keep the copy
    they were given beside them (``system`` stays as it is).
    """
    params = conninfo_to_dict(instructor_url)
    mode = str(params.get("sslmode") or "prefer")
    if mode in UNCHECKED_TLS:
        return ("require" if tls_in_use else mode), None
    root = str(params.get("sslrootcert") or "") or None
    if mode.startswith("verify-") and root and root != "system":
        root = PurePath(root).name
    return mode, root


def format_student_url(
    name: str,
    password: str,
    *,
    host: str,
    port: int | str | None,
    database: str,
    sslmode: str,
    sslrootcert: str | None = None,
) -> str:
    """``postgresql://NAME:PASSWORD@HOST:PORT/DATABASE?sslmode=MODE``, percent-encoded where a
    part needs it (libpq decodes every part; a socket directory is a percent-encoded host)."""
    netloc = f"[{host}]" if ":" in host else quote(host, safe="")  # [an IPv6 literal]
    if port:
        netloc += f":{port}"
    params = {"sslmode": sslmode}
    if sslrootcert:
        params["sslrootcert"] = sslrootcert
    query = urlencode(params, quote_via=quote, safe="")
    credentials = f"{quote(name, safe='')}:{quote(password, safe='')}"
    return f"postgresql://{credentials}@{netloc}/{quote(database, safe='')}?{query}"


def server_limits(admin_url: str, name: str) -> list[str]:
    """One line for each protection of a class that this server does not give, as seen after
    adding student ``name`` (for a server other than the embedded one: a managed PostgreSQL)."""
    with connect(admin_url) as conn:
        try:
            database = _database(conn)
            row = conn.execute(
                admin_queries()["server_limits"], {"role": name, "group": group_role(database)}
            ).fetchone()
            host = conn.info.host
        except psycopg.Error as exc:
            raise refused(exc) from exc
    assert row is not None
    reserved, max_connections, superuser_slots, students, databases, tls = row
    lines = []
    if not reserved:
        share = "no limit" if students < 0 else f"{students} connections"
        lines.append(
            f"no connection slots are kept for your role on this server (reserved_connections: "
            f"PostgreSQL 16+, set by its superuser): the students may open {share} of its "
            f"{max_connections - superuser_slots}, and if they fill them the coordinator and "
            "`students revoke` cannot connect"
        )
    if databases:
        lines.append(
            f"{name} may also connect to this server's database(s) {', '.join(databases)} (no "
            "class data there; only their owner can REVOKE CONNECT ... FROM PUBLIC)"
        )
    if not tls:
        lines.append(
            "your connection to this server is not encrypted: students' passwords and uploads "
            "cross the network in clear unless the server has TLS (then use sslmode=require)"
        )
    if host.startswith("/") or host in LOCAL_HOSTS:
        lines.append(
            f"this URL names this machine ({host}): students elsewhere need the server's "
            "network address in it"
        )
    return lines


def refused(exc: psycopg.Error) -> DatabaseError:
    """``exc`` as one line, naming what managing students needs when the role lacks it."""
    error = translate_error(exc)
    if exc.sqlstate == "42501":  # insufficient_privilege
        return DatabaseError(
            f"{error}: managing students needs a role with CREATEROLE (the embedded server's "
            "own commands have it)"
        )
    return error
