from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from ganfriends.db.migrations import discover
from ganfriends.db.server import PASSWORD_FILE
from tests.acceptance.conftest import cli_env


def gf(args: list[str], cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ganfriends", *args],
        cwd=cwd, env=cli_env(cwd), capture_output=True, text=True, input=stdin, timeout=120,
    )  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_init_db_migrates_then_reports_up_to_date(db_url: str, tmp_path: Path) -> None:
    first = gf(["init-db", "--db", db_url], tmp_path)
    assert first.returncode == 0, first.stderr
    assert "schema is up to date" in first.stdout  # the test database is already migrated


def test_init_db_reset_needs_confirmation(db_url: str, tmp_path: Path) -> None:
    refused = gf(["init-db", "--reset", "--db", db_url], tmp_path, stdin="")
    assert refused.returncode == 1
    assert "--yes" in refused.stderr
    done = gf(["init-db", "--reset", "--yes", "--db", db_url], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "database reset" in done.stdout
    every = ", ".join(m.name for m in discover())
    assert f"applied migrations: {every}" in done.stdout


def test_db_start_listen_url_and_stop(tmp_path: Path) -> None:
    data_dir, port = tmp_path / "class-db", free_port()
    started = gf(["db", "start", "--data-dir", str(data_dir), "--listen", "127.0.0.1",
                  "--port", str(port)], tmp_path)  # fmt: skip
    try:
        assert started.returncode == 0, started.stderr
        assert f"TLS on 127.0.0.1 port {port}: self-signed certificate" in started.stdout
        assert "SHA-256 fingerprint" in started.stdout and "WARNING" not in started.stderr
        # The owner's password is in no output but `db url`'s: students get logins of their own.
        password = (data_dir / PASSWORD_FILE).read_text().strip()
        status = gf(["db", "status", "--data-dir", str(data_dir)], tmp_path)
        assert status.returncode == 0, status.stderr
        for shown in (started, status):
            assert password not in shown.stdout + shown.stderr
        assert "ganfriends students add NAME" in started.stdout
        owner = gf(["db", "url", "--data-dir", str(data_dir)], tmp_path)
        url = owner.stdout.strip()
        assert f"127.0.0.1:{port}" in url and f"ganfriends:{password}@" in url
        assert "owner's URL" in owner.stderr and password not in owner.stderr
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        # Over the network a password is required: never trust.
        no_password = f"postgresql://ganfriends@127.0.0.1:{port}/ganfriends"
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(no_password, connect_timeout=5).close()
    finally:
        stopped = gf(["db", "stop", "--data-dir", str(data_dir)], tmp_path)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    gone = gf(["db", "url", "--data-dir", str(data_dir)], tmp_path)
    assert gone.returncode == 1 and "no PostgreSQL is running" in gone.stderr


def test_db_start_in_plaintext_warns(tmp_path: Path) -> None:
    data_dir, port = tmp_path / "class-db", free_port()
    started = gf(["db", "start", "--data-dir", str(data_dir), "--listen", "127.0.0.1",
                  "--port", str(port), "--insecure-plaintext"], tmp_path)  # fmt: skip
    try:
        assert started.returncode == 0, started.stderr
        assert "WITHOUT TLS" in started.stderr
        assert "sslmode" not in started.stdout
    finally:
        gf(["db", "stop", "--data-dir", str(data_dir)], tmp_path)


def test_db_tls_options_without_listen_are_refused(tmp_path: Path) -> None:
    refused = gf(["db", "start", "--data-dir", str(tmp_path / "db"), "--insecure-plaintext"],
                 tmp_path)  # fmt: skip
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        "error: --tls-cert, --tls-key and --insecure-plaintext go with --listen"
    ]


def test_worker_without_a_database_says_how_to_get_one(tmp_path: Path) -> None:
    env = cli_env(tmp_path) | {"GANFRIENDS_PG_DIR": str(tmp_path / "none")}
    result = subprocess.run(
        [sys.executable, "-m", "ganfriends", "worker"], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1
    assert "no database configured" in result.stderr
    assert "ganfriends students add NAME" in result.stderr
