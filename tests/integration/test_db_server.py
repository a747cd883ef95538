"""The embedded PostgreSQL server: lifecycle, detachment, stale pid files, authentication."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from ganfriends.db import EmbeddedPostgres
from ganfriends.db._pgctl import free_port
from ganfriends.db.errors import DatabaseError


@pytest.fixture
def server(pg_dir: Path) -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres(pg_dir, durable=False)
    try:
        yield server
    finally:
        server.stop()


def _whoami(url: str) -> tuple[str, str]:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT current_user, current_database()").fetchone()
    assert row is not None
    return row[0], row[1]


def test_lifecycle_and_detached_start(server: EmbeddedPostgres) -> None:
    assert server.status() is None
    # Started by a process that then exits: the server must keep running (no atexit stop).
    code = (
        "import sys; from pathlib import Path; from ganfriends.db import EmbeddedPostgres; "
        "EmbeddedPostgres(Path(sys.argv[1]), durable=False).start()"
    )
    subprocess.run([sys.executable, "-c", code, str(server.data_dir)], check=True, timeout=60)

    info = server.status()
    assert info is not None
    assert info.host is None and info.password is None  # local only: no TCP, no password
    assert _whoami(info.url()) == ("ganfriends", "ganfriends")
    assert server.start() == info  # idempotent: same running server

    assert info.socket_dir is not None
    assert stat.S_IMODE(info.socket_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(server.data_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(server.password_file.stat().st_mode) == 0o600
    hba = (server.pgdata / "pg_hba.conf").read_text()
    rules = [line.split() for line in hba.splitlines() if line and not line.startswith("#")]
    assert all(rule[-1] == "scram-sha-256" for rule in rules if rule[0] == "host")
    assert (server.data_dir / "server.log").stat().st_size > 0

    assert server.stop() is True
    assert server.status() is None
    assert server.stop() is False
    with pytest.raises(psycopg.OperationalError):
        _whoami(info.url())


def test_stale_pid_file_does_not_fool_status(server: EmbeddedPostgres) -> None:
    server.start()
    pid_file = server.pgdata / "postmaster.pid"
    lines = pid_file.read_text().splitlines()
    server.stop()
    assert not pid_file.exists()

    # A crash leaves the file behind; its pid may be dead or reused by an unrelated process.
    dead = subprocess.Popen(["true"])
    dead.wait()
    for stale_pid in (dead.pid, os.getpid()):
        pid_file.write_text("\n".join([str(stale_pid), *lines[1:]]) + "\n")
        assert server.status() is None

    restarted = server.start()  # the stale file (pointing at us, alive) must not block start
    assert restarted.pid != os.getpid()
    assert server.status() == restarted
    assert _whoami(restarted.url()) == ("ganfriends", "ganfriends")


def test_listening_server_requires_the_password(
    pg_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No password may come from the environment or a ~/.pgpass.
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", str(pg_dir.parent / "no-pgpass"))
    port = free_port()
    server = EmbeddedPostgres(pg_dir, listen="127.0.0.1", port=port, durable=False)
    try:
        info = server.start()
        assert (info.host, info.port) == ("127.0.0.1", port)
        password = server.password_file.read_text().strip()
        assert info.password == password and len(password) >= 32
        assert info.url() == (
            f"postgresql://ganfriends:{password}@127.0.0.1:{port}/ganfriends?sslmode=require"
        )
        assert _whoami(info.url()) == ("ganfriends", "ganfriends")

        tls = "?sslmode=require"
        base = f"postgresql://ganfriends@127.0.0.1:{port}/ganfriends{tls}"
        with pytest.raises(psycopg.OperationalError, match="password"):
            _whoami(base)
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            _whoami(f"postgresql://ganfriends:wrong@127.0.0.1:{port}/ganfriends{tls}")
        # The superuser has no password at all: it cannot log in over TCP.
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            _whoami(f"postgresql://postgres:{password}@127.0.0.1:{port}/postgres{tls}")
        # The unix socket stays available to the machine's owner.
        assert _whoami(info.local_url()) == ("ganfriends", "ganfriends")
    finally:
        server.stop()


def test_a_restart_without_listen_keeps_serving_the_class(pg_dir: Path) -> None:
    # The instructor started the class server; after `db stop`, the next instructor command
    # starts it without --listen: the students' URLs must keep working.
    port = free_port()
    first = EmbeddedPostgres(pg_dir, listen="127.0.0.1", port=port, durable=False)
    url = first.start().url()
    first.stop()
    again = EmbeddedPostgres(pg_dir, durable=False)
    try:
        info = again.start()
        assert (info.host, info.port) == ("127.0.0.1", port)
        assert info.url() == url
        assert _whoami(url) == ("ganfriends", "ganfriends")
    finally:
        again.stop()


def test_a_cluster_of_another_postgresql_major_is_refused_with_one_line(pg_dir: Path) -> None:
    server = EmbeddedPostgres(pg_dir, durable=False)
    server.start()
    server.stop()
    (server.pgdata / "PG_VERSION").write_text("18\n")
    with pytest.raises(DatabaseError, match="created by PostgreSQL 18 and this ganfriends runs"):
        server.start()
