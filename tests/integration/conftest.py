"""Real PostgreSQL for the integration tests: one server per session, one database per test.

``GANFRIENDS_TEST_DATABASE_URL`` points the tests at an existing server (its role needs
CREATEDB); otherwise an embedded server is started in a session temporary directory. Databases
are copied from a migrated template (fast ``CREATE DATABASE ... TEMPLATE``), one per test.
There is no skip: without a database server these tests fail.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from ganfriends.db import Database, EmbeddedPostgres, admin, migrate
from ganfriends.db.students import group_role
from tests.integration.queue_helpers import Raw
from tests.integration.student_helpers import Student, drop_roles, new_student

TEST_URL_ENV = "GANFRIENDS_TEST_DATABASE_URL"
POOL_TIMEOUT = 5.0  # seconds; a test waiting longer than this for a connection has failed


@dataclass(frozen=True)
class PgServer:
    """A server the tests may create databases on."""

    admin_url: str  # a role allowed to CREATE/DROP DATABASE
    owner: str  # the role that owns the test databases and that tests connect as
    url_for: Callable[[str], str]  # database name -> URL for ``owner``
    embedded: EmbeddedPostgres | None  # None when the server comes from the environment


_counter = itertools.count()


def unique_name(prefix: str) -> str:
    """A database name no other test (or concurrent test session) uses."""
    return f"{prefix}_{os.getpid()}_{next(_counter)}"


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    url = os.environ.get(TEST_URL_ENV)
    if url:
        yield PgServer(
            admin_url=url,
            owner=admin.current_user(url),
            url_for=lambda name: make_conninfo(url, dbname=name),
            embedded=None,
        )
        return
    # Not under pytest's temp root: another pytest session on this machine re-chmods that root
    # to 0700, and the server (running as another OS user when we are root) then dies with
    # "could not open pg_control: Permission denied" in the middle of this session.
    data_dir = Path(tempfile.mkdtemp(prefix="ganfriends-test-pg-"))
    server = EmbeddedPostgres(data_dir, durable=False)
    info = server.start()
    try:
        yield PgServer(
            admin_url=info.admin_url(), owner=info.user, url_for=info.url, embedded=server
        )
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def template_db(pg_server: PgServer) -> Iterator[str]:
    """A database with every migration applied, copied for each test."""
    name = unique_name("gf_template")
    admin.create_database(pg_server.admin_url, name, owner=pg_server.owner)
    try:
        # Closed before any copy: CREATE DATABASE ... TEMPLATE needs the template unused.
        with Database(pg_server.url_for(name), timeout=POOL_TIMEOUT) as db:
            migrate(db)
        yield name
    finally:
        admin.drop_database(pg_server.admin_url, name)


def _database_url(pg_server: PgServer, template: str | None) -> Iterator[str]:
    name = unique_name("gf_test")
    admin.create_database(pg_server.admin_url, name, owner=pg_server.owner, template=template)
    try:
        yield pg_server.url_for(name)
    finally:
        admin.drop_database(pg_server.admin_url, name)


@pytest.fixture
def db_url(pg_server: PgServer, template_db: str) -> Iterator[str]:
    """URL of a fresh, fully migrated database, dropped after the test."""
    yield from _database_url(pg_server, template_db)


@pytest.fixture
def empty_db_url(pg_server: PgServer) -> Iterator[str]:
    """URL of a fresh database without any migration, dropped after the test."""
    yield from _database_url(pg_server, None)


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    """An open Database on a fresh migrated database."""
    with Database(db_url, timeout=POOL_TIMEOUT) as database:
        yield database


@pytest.fixture
def pg_dir(tmp_path: Path) -> Path:
    """A data directory for a private embedded server (tests that stop/restart one)."""
    return tmp_path / "pg"


@pytest.fixture
def raw(db_url: str) -> Iterator[Raw]:
    """A plain psycopg connection for tests that move the database clock or read raw rows."""
    conn = Raw(db_url)
    try:
        yield conn
    finally:
        conn.close()


@pytest.fixture
def class_admin(pg_server: PgServer, db_url: str) -> Iterator[str]:
    """The superuser's URL to this test's class database; the class's roles dropped after."""
    database = conninfo_to_dict(db_url)["dbname"]
    admin_url = make_conninfo(pg_server.admin_url, dbname=database)
    yield admin_url
    with psycopg.connect(admin_url, autocommit=True) as conn:
        group = group_role(str(database))
        rows = conn.execute(
            "SELECT r.rolname FROM pg_roles r JOIN pg_auth_members m ON m.member = r.oid "
            "JOIN pg_roles g ON g.oid = m.roleid WHERE g.rolname = %s",
            (group,),
        ).fetchall()
        members = [r[0] for r in rows]
    drop_roles(admin_url, *members, group)


@pytest.fixture
def student(db_url: str, class_admin: str) -> Student:
    return new_student(db_url, class_admin)
