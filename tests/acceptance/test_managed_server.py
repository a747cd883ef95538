"""A class on a server the instructor does not own as superuser (a managed PostgreSQL).

The instructor's role has CREATEROLE and owns the class database, nothing more: no superuser,
no pg_read_all_stats, pg_signal_backend or pg_use_reserved_connections (``managed_postgres``:
Debian's PostgreSQL 15, TLS and passwords). Through the CLI, as an instructor would: init-db,
students add/list/revoke and a class run with a worker on the student's URL; then the
protections that need more than ownership: ending a student's stuck session (the coordinator's
watchdog) and what `students add` says the server cannot give.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql as pgsql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from rich.console import Console

from ganfriends.classroom.watchdog import Watchdog
from ganfriends.db import Database, migrate
from ganfriends.db import students as roles
from tests.acceptance.class_harness import TINY
from tests.acceptance.conftest import cli_env
from tests.acceptance.managed_postgres import (
    INSTRUCTOR,
    ManagedServer,
    debian_bin_dir,
    managed_server,
)
from tests.conftest import requires_fashion_mnist
from tests.integration.student_helpers import wait_for_transaction_age

BIN_DIR = debian_bin_dir()
pytestmark = pytest.mark.skipif(
    BIN_DIR is None,
    reason="Debian's PostgreSQL is not installed (`make postgres` installs it when root)",
)


@pytest.fixture(scope="module")
def managed() -> Iterator[ManagedServer]:
    assert BIN_DIR is not None
    with managed_server(BIN_DIR) as server:
        yield server


def gf(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ganfriends", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def env_for(url: str, tmp_path: Path) -> dict[str, str]:
    """A machine that knows only ``url`` (in the environment, as the docs say): no embedded
    server may start here."""
    return {
        **cli_env(tmp_path),
        "GANFRIENDS_DATABASE_URL": url,
        "GANFRIENDS_PG_DIR": str(tmp_path / "no-embedded-server"),
    }


def session_ssl(url: str) -> bool:
    with psycopg.connect(url, connect_timeout=10) as conn:
        row = conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()
    return bool(row and row[0])


@requires_fashion_mnist
def test_a_class_on_a_managed_server(managed: ManagedServer, tmp_path: Path) -> None:
    instructor = env_for(managed.url, tmp_path)
    initialised = gf(["init-db"], instructor, tmp_path)
    assert initialised.returncode == 0, initialised.stderr

    # students add: a login of alice's own, over TLS like the instructor's.
    added = gf(["students", "add", "alice"], instructor, tmp_path)
    assert added.returncode == 0, added.stderr
    printed = conninfo_to_dict(added.stdout.strip().splitlines()[-1])
    password = str(printed["password"])
    assert (printed["user"], printed["dbname"], printed["sslmode"]) == ("alice", "class", "require")
    url = roles.student_url(managed.url, "alice", password)
    assert url == f"postgresql://alice:{password}@127.0.0.1:{managed.port}/class?sslmode=require"
    assert session_ssl(url)
    assert added.stdout.strip().splitlines()[-1] == url  # the form the embedded server prints
    assert "no connection slots are kept for your role" in added.stdout  # (server_limits)

    # A class run: the coordinator as the instructor, one worker as alice, from her URL.
    coordinator = subprocess.Popen(
        [sys.executable, "-m", "ganfriends", "coordinator", "--output-dir", "run", *TINY,
         "--images-per-work-unit", "64", "--workunits-per-update", "2", "--micro-batch", "32",
         "--max-iterations", "1", "--seed", "1"],
        cwd=tmp_path, env=instructor, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    worker = subprocess.Popen(
        [sys.executable, "-m", "ganfriends", "worker", "--name", "Alice", "--device", "cpu"],
        cwd=tmp_path, env=env_for(url, tmp_path), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        out = coordinator.communicate(timeout=180)[0]
        assert coordinator.returncode == 0, out
        # The watchdog can reach alice's sessions: it has nothing to say about them.
        assert "cannot end" not in out, out
        worker_out = worker.communicate(timeout=60)[0]
        assert worker.returncode == 0, worker_out
    finally:
        for p in (coordinator, worker):
            if p.poll() is None:
                p.kill()
                p.communicate()

    listed = gf(["students", "list"], instructor, tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "alice" in listed.stdout
    with psycopg.connect(managed.url) as conn:
        credited = conn.execute(
            "SELECT role_name, sum(units_done) FROM ganfriends.workers GROUP BY role_name"
        ).fetchall()
    assert credited == [("alice", 4)]  # 1 alternating step x 2 units x (D, G)

    # students revoke: her open session is ended (without pg_signal_backend), no new login.
    held = psycopg.connect(url, autocommit=True)
    try:
        revoked = gf(["students", "revoke", "alice"], instructor, tmp_path)
        assert revoked.returncode == 0, revoked.stderr
        with pytest.raises(psycopg.OperationalError):
            held.execute("SELECT 1")
    finally:
        held.close()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=10)


@pytest.fixture
def class_db(managed: ManagedServer) -> Iterator[str]:
    """The instructor's URL for a second class database of its own (CREATEDB), migrated."""
    url = make_conninfo(managed.url, dbname="watched")
    with psycopg.connect(managed.url, autocommit=True) as conn:
        conn.execute(pgsql.SQL("CREATE DATABASE {}").format(pgsql.Identifier("watched")))
    with Database(url, max_size=1) as db:
        migrate(db)
    yield url
    with psycopg.connect(managed.superuser_url, autocommit=True) as conn:
        conn.execute(pgsql.SQL("DROP DATABASE {} WITH (FORCE)").format(pgsql.Identifier("watched")))


def test_the_watchdog_ends_a_students_stuck_session_on_a_managed_server(
    class_db: str, managed: ManagedServer
) -> None:
    carol = make_conninfo(class_db, user="carol", password=roles.add_student(class_db, "carol"))
    hostile = psycopg.connect(carol, autocommit=True)
    console = Console(record=True, width=400)
    try:
        # A student holding a transaction open, the server's timeout switched off.
        hostile.execute("SET idle_in_transaction_session_timeout = 0")
        hostile.execute("BEGIN")
        hostile.execute("SELECT count(*) FROM ganfriends.runs")
        wait_for_transaction_age(class_db, hostile, 0.1)
        with Database(class_db, max_size=1) as db:
            Watchdog(db, console).sweep(seconds=0.1)
        with pytest.raises(psycopg.OperationalError):
            hostile.execute("SELECT 1")
    finally:
        hostile.close()
    assert "ended student carol's session" in console.export_text()

    # A student whose role the coordinator's is no member of (another instructor's, or one
    # added before ganfriends made the instructor a member): the watchdog says so, once.
    with psycopg.connect(class_db, autocommit=True) as conn:
        conn.execute(pgsql.SQL("REVOKE {} FROM {}").format(
            pgsql.Identifier("carol"), pgsql.Identifier(INSTRUCTOR)))  # fmt: skip
    with Database(class_db, max_size=1) as db:
        watchdog = Watchdog(db, console)
        watchdog.sweep()
        watchdog.sweep()
    said = console.export_text()
    assert said.count("cannot end the sessions of student(s) carol") == 1, said
    # The next `students add` makes the instructor's role a member again.
    roles.add_student(class_db, "dave")
    with Database(class_db, max_size=1) as db:
        assert db.fetch_all("students_out_of_reach") == []


def test_students_add_names_what_a_managed_server_cannot_give(
    class_db: str, managed: ManagedServer
) -> None:
    roles.add_student(class_db, "erin")
    lines = roles.server_limits(class_db, "erin")
    assert len(lines) == 3, lines
    slots, databases, machine = lines
    assert slots.startswith("no connection slots are kept for your role") and "of its 37" in slots
    assert (
        databases.startswith("erin may also connect to this server's database(s) ")
        and "postgres" in databases
    )
    assert "this URL names this machine (127.0.0.1)" in machine
    assert os.environ.get("GANFRIENDS_DATABASE_URL") is None
