"""A class with per-student logins, through the real CLI: the instructor adds students with one
command each, every student's worker trains from its own URL, and a revoked student is out."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.acceptance.class_harness import TINY, wait_for_line
from tests.acceptance.conftest import cli_env
from tests.conftest import requires_fashion_mnist


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def instructor_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """The instructor's machine: its own embedded server, listening on 127.0.0.1."""
    env = {**cli_env(tmp_path), "GANFRIENDS_PG_DIR": str(tmp_path / "pg")}
    started = subprocess.run(
        [sys.executable, "-m", "ganfriends", "db", "start", "--listen", "127.0.0.1",
         "--port", str(free_port())],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    yield env
    subprocess.run([sys.executable, "-m", "ganfriends", "db", "stop"], env=env, timeout=120)


STEPS = 6  # long enough that the last of three workers to load its data still gets units


def gf(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ganfriends", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


@requires_fashion_mnist
def test_students_added_by_the_instructor_train_from_their_own_urls(
    instructor_env: dict[str, str], tmp_path: Path
) -> None:
    urls = {}
    for name in ("alice", "bob", "carol"):
        added = gf(["students", "add", name], instructor_env, tmp_path)
        assert added.returncode == 0, added.stderr
        urls[name] = added.stdout.strip().splitlines()[-1]  # the URL is the last line
        assert urls[name].startswith(f"postgresql://{name}:")
        assert "127.0.0.1" in urls[name] and urls[name].endswith("?sslmode=require")
    # The server takes no plaintext TCP session, so every worker below trains over TLS.
    with pytest.raises(psycopg.OperationalError, match="no encryption"):
        psycopg.connect(urls["alice"].replace("require", "disable"), connect_timeout=10)

    # Each student's machine knows only its own URL, passed in the environment. The workers
    # connect first and wait for the run, polling often, so that all three join it at once
    # (a worker that loads its data after two others finished a short run has nothing to do).
    student_env = {k: v for k, v in instructor_env.items() if k != "GANFRIENDS_PG_DIR"}
    student_env["GANFRIENDS_PG_DIR"] = str(tmp_path / "no-server-here")
    student_env["GANFRIENDS_WORKER_POLL_INTERVAL"] = "0.1"
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "ganfriends", "worker", "--name", name, "--device", "cpu"],
            cwd=tmp_path,
            env={**student_env, "GANFRIENDS_DATABASE_URL": url},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for name, url in urls.items()
    ]
    for worker in workers:
        wait_for_line(worker, "Waiting for the instructor to start a run")
    coordinator = subprocess.Popen(
        [sys.executable, "-m", "ganfriends", "coordinator", "--output-dir", "run", *TINY,
         "--images-per-work-unit", "64", "--workunits-per-update", "3", "--micro-batch", "32",
         "--max-iterations", str(STEPS), "--seed", "1"],
        cwd=tmp_path, env=instructor_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    try:
        out = coordinator.communicate(timeout=300)[0]
        assert coordinator.returncode == 0, out
        outputs = [w.communicate(timeout=120)[0] for w in workers]
        assert [w.returncode for w in workers] == [0, 0, 0], outputs
    finally:
        for p in (coordinator, *workers):
            if p.poll() is None:
                p.kill()
                p.communicate()

    listed = gf(["students", "list"], instructor_env, tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert all(name in listed.stdout for name in urls)
    instructor_url = gf(["db", "url"], instructor_env, tmp_path).stdout.strip()
    with psycopg.connect(instructor_url) as conn:
        credited: dict[str, int] = dict(conn.execute(
            "SELECT role_name, sum(units_done) FROM ganfriends.workers GROUP BY role_name"
        ).fetchall())  # fmt: skip
    # STEPS alternating steps x 3 units x (D, G)
    assert set(credited) == set(urls) and sum(credited.values()) == STEPS * 3 * 2

    revoked = gf(["students", "revoke", "bob"], instructor_env, tmp_path)
    assert revoked.returncode == 0, revoked.stderr
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(urls["bob"], connect_timeout=10)
    with psycopg.connect(urls["alice"], connect_timeout=10) as conn:  # the others are unaffected
        row = conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()
        assert row == (True,)
    assert os.environ.get("GANFRIENDS_DATABASE_URL") is None  # nothing leaked into the tests
