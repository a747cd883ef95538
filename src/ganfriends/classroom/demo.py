"""``ganfriends demo``: a whole class on one machine.

Starts the embedded PostgreSQL, then a coordinator and N workers as separate processes (exactly the
commands an instructor and students run), shows one live progress line read from the database, and
stops everything at the end or on Ctrl+C, leaving no process behind. Each process logs to
``DIR/logs/``; sample grids land in ``DIR/outputs/samples/``.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from rich.console import Console

from ganfriends.children import child_env
from ganfriends.classroom.status import one_line, read_status
from ganfriends.dashboard.launch import dashboard_url
from ganfriends.db import Database, DatabaseError, EmbeddedPostgres, migrate
from ganfriends.db.guardian import Guardian
from ganfriends.errors import GanError
from ganfriends.signals import StopRequest, graceful_stop

REFRESH = 1.0  # seconds between progress line refreshes
# Seconds a process gets to stop by itself before it is killed: a worker gives its unit back
# within its own grace (worker.stop_grace, 5 s), and docker stop waits 10 s before SIGKILL.
STOP_GRACE = 8.0
LOG_EVERY = 15.0  # seconds between progress lines when the output is not a terminal


@dataclass
class DemoSettings:
    """What ``ganfriends demo`` runs; the defaults show clothes on a laptop CPU in minutes."""

    workdir: Path
    workers: int = 2
    # Small updates (2 units of 64 images) at half the default width: many optimizer steps per
    # minute, which is what makes clothes appear on a CPU (measured on a 2-core CPU machine).
    epochs: int = 2  # 937 updates of 128 images
    max_iterations: int | None = None
    seed: int = 0
    images_per_work_unit: int = 64
    workunits_per_update: int = 2
    micro_batch: int = 64
    features: int = 32
    sample_interval: int = 50
    threads_per_process: int = 1
    dashboard_port: int | None = None  # also serve the dashboard on this port
    extra_coordinator_args: tuple[str, ...] = ()


def _spawn(args: list[str], log: IO[str], threads: int) -> subprocess.Popen[str]:
    env = child_env()  # they die with us, even if we are SIGKILLed
    # N workers on one machine: one thread each, or they fight over the cores.
    env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [sys.executable, "-m", "ganfriends", *args],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
        start_new_session=True,  # our Ctrl+C is handled here, then passed on deliberately
    )


def _stop(processes: list[subprocess.Popen[str]], console: Console) -> None:
    """SIGTERM (a warm stop) to all, wait, then SIGKILL any straggler."""
    for p in processes:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE
    for p in processes:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            console.print(f"[yellow]process {p.pid} did not stop in time: killing it[/]")
            p.kill()
            p.wait()


def run_demo(settings: DemoSettings, console: Console | None = None) -> int:
    """Run the demo; returns 0 when the run completed, 130 when stopped by a signal."""
    console = console or Console(soft_wrap=True)
    workdir = settings.workdir.resolve()
    logs, outputs = workdir / "logs", workdir / "outputs"
    # Every demo is a new run: its grids must not mix with an earlier demo's.
    shutil.rmtree(outputs, ignore_errors=True)
    logs.mkdir(parents=True, exist_ok=True)
    processes: list[subprocess.Popen[str]] = []
    files: list[IO[str]] = []
    with graceful_stop() as stop:
        server = EmbeddedPostgres(workdir / "postgres")
        started_server = server.status() is None
        info = server.start()
        # A server we started stops with us, even if we are SIGKILLed; one already running stays.
        guardian = Guardian(server.data_dir) if started_server else None
        url = info.local_url()
        console.print(f"PostgreSQL: {url}  (data in {workdir / 'postgres'})")
        try:
            with Database(url) as db:
                migrate(db)
                coordinator = _start_class(settings, url, outputs, logs, processes, files)
                console.print(
                    f"started a coordinator and {settings.workers} workers; logs in {logs}, "
                    f"samples in {outputs / 'samples'}"
                )
                if settings.dashboard_port is not None and not stop.requested:
                    _start_dashboard(settings.dashboard_port, url, logs, processes, files, stop)
                    console.print(f"dashboard: {dashboard_url(settings.dashboard_port)}")
                _follow(db, coordinator, stop, console)
                if not stop.requested and coordinator.returncode != 0:
                    raise GanError(
                        f"the coordinator exited with status {coordinator.returncode}: "
                        f"see {logs / 'coordinator.log'}"
                    )
                final = read_status(db)
                if final is not None:
                    console.print(one_line(final))
        finally:
            _stop(processes, console)
            for f in files:
                f.close()
            if started_server:
                server.stop()
            if guardian is not None:
                guardian.release()
    if stop.requested:
        console.print("demo interrupted; everything stopped")
        return 130
    console.print(
        f"demo finished: sample grids in {outputs / 'samples'} (latest.png is the newest)"
    )
    return 0


def _start_class(
    settings: DemoSettings,
    url: str,
    outputs: Path,
    logs: Path,
    processes: list[subprocess.Popen[str]],
    files: list[IO[str]],
) -> subprocess.Popen[str]:
    """Start the coordinator and the workers (appended to ``processes``); the coordinator."""
    coordinator_args = [
        "coordinator", "--db", url, "--output-dir", str(outputs),
        "--seed", str(settings.seed), "--epochs", str(settings.epochs),
        "--images-per-work-unit", str(settings.images_per_work_unit),
        "--workunits-per-update", str(settings.workunits_per_update),
        "--micro-batch", str(settings.micro_batch),
        "--sample-interval", str(settings.sample_interval), "--new-run",
        "--g-features", str(settings.features), "--d-features", str(settings.features),
        *settings.extra_coordinator_args,
    ]  # fmt: skip
    if settings.max_iterations:
        coordinator_args += ["--max-iterations", str(settings.max_iterations)]
    files.append((logs / "coordinator.log").open("w"))
    coordinator = _spawn(coordinator_args, files[-1], settings.threads_per_process)
    processes.append(coordinator)
    for i in range(settings.workers):
        files.append((logs / f"worker-{i + 1}.log").open("w"))
        processes.append(
            _spawn(
                ["worker", "--db", url, "--name", f"worker-{i + 1}", "--device", "cpu"],
                files[-1],
                settings.threads_per_process,
            )
        )
    return coordinator


def _start_dashboard(
    port: int,
    url: str,
    logs: Path,
    processes: list[subprocess.Popen[str]],
    files: list[IO[str]],
    stop: StopRequest,
) -> None:
    """Serve the dashboard beside the class (appended to ``processes``) once it answers."""
    from ganfriends.dashboard.launch import start_dashboard, wait_until_ready

    files.append((logs / "dashboard.log").open("w"))
    board = start_dashboard(url, port, log=files[-1])
    processes.append(board)
    wait_until_ready(board, port, stop=stop)


def _follow(
    db: Database, coordinator: subprocess.Popen[str], stop: StopRequest, console: Console
) -> None:
    """One live progress line from the database until the coordinator exits or a stop."""
    last_line = time.monotonic()
    with console.status("starting...") as live:
        while not stop.requested and coordinator.poll() is None:
            try:
                status = read_status(db)
            except DatabaseError:
                status = None
            if status is not None:
                live.update(one_line(status))
                # Without a terminal there is no live line: log one now and then.
                if not console.is_terminal and time.monotonic() - last_line > LOG_EVERY:
                    console.print(one_line(status))
                    last_line = time.monotonic()
            stop.event.wait(REFRESH)
