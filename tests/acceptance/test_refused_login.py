"""How a student's worker gets its database URL: a refused login is one clear line and exit
status 2 (not an endless retry), and without a URL the worker asks for it without echo."""

from __future__ import annotations

import contextlib
import os
import select
import signal
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
    warning, error = result.stderr.strip().splitlines()
    assert warning.startswith("warning: this --db URL holds a password")
    assert error.startswith("error: the database refused this login")
    assert "password authentication failed" in error
    assert "not-the-password" not in result.stderr + result.stdout
    assert "retrying" not in result.stdout
    assert seconds < 60


def test_an_unknown_database_is_refused_with_exit_status_2(db_url: str, tmp_path: Path) -> None:
    result, _ = run_worker(make_conninfo(db_url, dbname="no_such_database"), tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert 'database "no_such_database" does not exist' in result.stderr


def test_without_a_url_the_worker_asks_for_it_on_its_terminal(db_url: str, tmp_path: Path) -> None:
    env = {**cli_env(tmp_path), "GANFRIENDS_PG_DIR": str(tmp_path / "no-embedded-server")}
    argv = [sys.executable, "-m", "ganfriends", "worker", "--name", "frank"]
    pid, fd = os.forkpty()  # a real terminal: getpass reads /dev/tty
    if pid == 0:  # the child: become the worker at once
        os.chdir(tmp_path)
        os.execve(sys.executable, argv, env)
    try:
        seen = read_until(fd, b"Database URL from your instructor: ")
        os.write(fd, db_url.encode() + b"\n")
        seen += read_until(fd, b"Waiting for the instructor to start a run")
        assert db_url.encode() not in seen  # not echoed
        os.kill(pid, signal.SIGINT)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 130  # a warm stop
    finally:
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)


def read_until(fd: int, marker: bytes, timeout: float = 60) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout
    while marker not in data:
        assert time.monotonic() < deadline, data.decode(errors="replace")
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            data += chunk
    assert marker in data, data.decode(errors="replace")
    return data
