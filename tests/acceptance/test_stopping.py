"""The stop policy, with real processes: SIGINT, SIGTERM and SIGHUP stop every long-running
command warmly; after any of them, and after SIGKILL, nothing it started is left running."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import psutil
import pytest

from tests.acceptance.class_harness import ClassRoom, wait_for_line
from tests.acceptance.conftest import cli_env
from tests.conftest import requires_fashion_mnist
from tests.waiting import wait_until

WARM = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP]
ALL = [*WARM, signal.SIGKILL]
TAG_ENV = "GF_STOP_TEST_TAG"  # not GANFRIENDS_*: the config would read it
LEFTOVER_WAIT = 15.0  # seconds: a warm stop of the children (worker grace 5 s) fits easily


def tagged(env: dict[str, str]) -> tuple[dict[str, str], str]:
    """``env`` plus a tag that every descendant inherits, so that leftovers can be found."""
    tag = uuid.uuid4().hex
    return {**env, TAG_ENV: tag}, tag


def descendants_left(tag: str, workdir: Path) -> list[str]:
    """Processes carrying ``tag`` or naming ``workdir`` (PostgreSQL runs as another user as root
    and may not keep our environment; its command line names its data directory)."""
    found = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        if p.info["pid"] == os.getpid():
            continue
        try:
            cmdline = p.info["cmdline"] or []
            environ = p.environ()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        if p.status() == psutil.STATUS_ZOMBIE:
            continue
        if environ.get(TAG_ENV) == tag or any(str(workdir) in part for part in cmdline):
            found.append(" ".join(cmdline))
    return found


def assert_nothing_left(tag: str, workdir: Path, timeout: float = LEFTOVER_WAIT) -> None:
    wait_until(
        lambda: not descendants_left(tag, workdir),
        lambda: f"no process left, but {descendants_left(tag, workdir)} are",
        timeout=timeout,
        interval=0.25,
    )


def test_wait_for_line_gives_up_on_a_silent_process() -> None:
    """The helper itself: a process that prints a line and then nothing fails the wait on time
    (it used to block on the read forever) and keeps what it printed for the message."""
    silent = subprocess.Popen(
        [sys.executable, "-c", "import time; print('hello', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        started = time.monotonic()
        with pytest.raises(AssertionError, match="hello"):
            wait_for_line(silent, "never printed", timeout=1)
        assert time.monotonic() - started < 10
    finally:
        silent.kill()
        silent.wait(timeout=10)
        # The abandoned reader sees the end of the output now; close the pipe once it is done.
        wait_until(
            lambda: all(t.name != "wait-for-line" for t in threading.enumerate()),
            "the abandoned reader to see the end of the output",
            timeout=10,
        )
        assert silent.stdout is not None
        silent.stdout.close()


# ------------------------------------------------------------------------------------ demo


@requires_fashion_mnist
@pytest.mark.parametrize("sig", ALL, ids=lambda s: signal.Signals(s).name)
def test_demo_leaves_nothing_behind_after(sig: signal.Signals, tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    env, tag = tagged(cli_env(tmp_path))
    demo = subprocess.Popen(
        [sys.executable, "-m", "ganfriends", "demo", "--workers", "2", "--workdir", str(workdir)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        wait_for_line(demo, "started a coordinator")
        logs = [workdir / "logs" / f"worker-{i}.log" for i in (1, 2)]
        wait_until(
            lambda: all(p.is_file() and "Processing work unit" in p.read_text() for p in logs),
            "both workers of the demo to be working on a unit",
            timeout=120,
        )
        demo.send_signal(sig)
        output = demo.communicate(timeout=60)[0]
        if sig == signal.SIGKILL:
            assert demo.returncode == -signal.SIGKILL
        else:
            assert demo.returncode == 130, output
            assert "everything stopped" in output
        assert_nothing_left(tag, workdir)
    finally:
        if demo.poll() is None:
            demo.kill()


# ------------------------------------------------------------------------------- dashboard


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.mark.parametrize("sig", ALL, ids=lambda s: signal.Signals(s).name)
def test_dashboard_leaves_no_server_behind_after(
    sig: signal.Signals, db_url: str, tmp_path: Path
) -> None:
    port = free_port()
    env, tag = tagged(cli_env(tmp_path))
    board = subprocess.Popen(
        [sys.executable, "-m", "ganfriends", "dashboard", "--db", db_url, "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        wait_for_line(board, "ganfriends dashboard:")
        board.send_signal(sig)
        board.communicate(timeout=20)
        if sig != signal.SIGKILL:
            assert board.returncode == 130
        assert_nothing_left(tag, tmp_path)
        with socket.socket() as s:  # the next dashboard can take the port
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))
    finally:
        if board.poll() is None:
            board.kill()


# ------------------------------------------------------------------ worker and coordinator

# Full-width model and big units: a unit is still computing when the signal lands.
SLOW_RUN = [
    "coordinator", "--output-dir", "run", "--images-per-work-unit", "2048",
    "--workunits-per-update", "1", "--micro-batch", "64", "--max-iterations", "3",
    "--work-unit-timeout", "600",
]  # fmt: skip


@requires_fashion_mnist
@pytest.mark.parametrize("sig", WARM, ids=lambda s: signal.Signals(s).name)
def test_a_stopped_worker_gives_its_unit_back_within_the_grace(
    sig: signal.Signals, room: ClassRoom
) -> None:
    room.start("coordinator", SLOW_RUN).wait_for("new run")
    worker = room.worker("carol", "--stop-grace", "1")
    worker.wait_for("Processing work unit 0")
    sent = time.monotonic()
    worker.popen.send_signal(sig)
    assert worker.finish(timeout=30) == 130
    assert time.monotonic() - sent < 10  # docker stop's SIGKILL comes after 10 s
    assert "giving the unit back" in worker.output
    assert "completed successfully" not in worker.output
    assert room.status()["units"]["pending"] == 1  # claimable at once, not after a 600 s lease


@requires_fashion_mnist
def test_a_stopped_worker_uploads_the_unit_in_hand_and_gives_back_the_claimed_ones_not_started(
    room: ClassRoom,
) -> None:
    run = [*SLOW_RUN, "--workunits-per-update", "3"]
    room.start("coordinator", run).wait_for("new run")
    worker = room.worker("erin", "--units-per-claim", "3", "--stop-grace", "300")
    worker.wait_for("Processing work unit 0")
    worker.popen.send_signal(signal.SIGINT)
    assert worker.finish(timeout=300) == 130
    assert "Giving back 2 claimed unit(s) not started" in worker.output
    assert "Work unit 0 completed successfully" in worker.output
    assert "Processing work unit 1" not in worker.output
    units = room.status()["units"]
    assert (units["done"], units["pending"]) == (1, 2)


def test_a_worker_waiting_for_an_unreachable_database_stops_on_the_first_signal(
    tmp_path: Path,
) -> None:
    room = ClassRoom(f"postgresql:///ganfriends?host={tmp_path / 'no-server'}", tmp_path)
    try:
        worker = room.worker("dave")
        worker.wait_for("database unreachable")
        sent = time.monotonic()
        worker.popen.send_signal(signal.SIGINT)
        assert worker.finish(timeout=30) == 130
        assert time.monotonic() - sent < 8
        assert "Stopped while the database was unreachable" in worker.output
    finally:
        room.close()


@requires_fashion_mnist
@pytest.mark.parametrize("sig", WARM, ids=lambda s: signal.Signals(s).name)
def test_a_stopped_coordinator_exits_at_a_consistent_point_and_resumes(
    sig: signal.Signals, room: ClassRoom
) -> None:
    run = ["--images-per-work-unit", "64", "--workunits-per-update", "1", "--micro-batch", "32",
           "--max-iterations", "4", "--seed", "3"]  # fmt: skip
    first = room.coordinator("run", *run, "--new-run")
    room.worker("erin")
    first.wait_for(r"version 1/")
    first.popen.send_signal(sig)
    assert first.finish(timeout=30) == 130, first.output
    second = room.coordinator("run", *run)
    assert second.finish(timeout=180) == 0, second.output
    # 4 alternating steps; the stop came mid-step (version 1: D stepped, G not yet).
    assert "version 8/8" in second.output
