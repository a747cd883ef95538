"""A wrong password or database name is one clear line and exit status 2, not an endless retry."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

from psycopg.conninfo import make_conninfo

from ganfriends.db import EmbeddedPostgres
from tests.acceptance.conftest import cli_env


def run_worker(url: str, cwd: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "ganfriends", "worker", "--db", url, "--name", "eve"],
        cwd=cwd, env=cli_env(cwd), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return result, time.monotonic() - start


def test_a_wrong_password_is_refused_with_exit_status_2(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = EmbeddedPostgres(tmp_path / "pg", listen="127.0.0.1", port=port, durable=False)
    info = server.start()
    try:
        assert info.password
        url = info.url().replace(info.password, "not-the-password")
        result, seconds = run_worker(url, tmp_path)
    finally:
        server.stop()
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "password authentication failed" in lines[0]
    assert "retrying" not in result.stdout
    assert seconds < 60


def test_an_unknown_database_is_refused_with_exit_status_2(db_url: str, tmp_path: Path) -> None:
    result, _ = run_worker(make_conninfo(db_url, dbname="no_such_database"), tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert 'database "no_such_database" does not exist' in result.stderr
