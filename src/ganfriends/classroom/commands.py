"""Handlers of the class-training commands: init-db, db, coordinator, worker, status, demo."""

from __future__ import annotations

import getpass
import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from ganfriends.classroom.connect import configured_url, embedded_url, open_database, resolve_url
from ganfriends.config import Config
from ganfriends.db import EmbeddedPostgres, default_data_dir, migrate, pending, reset
from ganfriends.errors import GanError
from ganfriends.signals import graceful_stop


def _console() -> Console:
    return Console(soft_wrap=True)


def init_db(config: Config, *, do_reset: bool, yes: bool) -> int:
    """Create or migrate the schema; ``do_reset`` drops everything first (after confirmation)."""
    console = _console()
    with open_database(config, start_embedded=True) as db:
        if do_reset:
            if not yes:
                if not sys.stdin.isatty():
                    raise GanError("init-db --reset deletes every run: confirm with --yes")
                answer = input(
                    "This deletes every run, weight and result in the database. Type 'yes': "
                )
                if answer.strip() != "yes":
                    console.print("nothing changed")
                    return 1
            reset(db)
            console.print("database reset")
        todo = [m.name for m in pending(db)]
        applied = migrate(db)
        console.print(
            f"applied migrations: {', '.join(applied)}" if applied else "schema is up to date"
        )
        assert set(applied) >= set(todo)
    return 0


def db_command(action: str, *, data_dir: str | None, listen: str | None, port: int | None) -> int:
    """``ganfriends db start|stop|url|status`` for the embedded server."""
    server = EmbeddedPostgres(
        Path(data_dir) if data_dir else default_data_dir(), listen=listen, port=port
    )
    if action == "start":
        info = server.start()
        print(f"PostgreSQL is running (data in {info.data_dir})")
        # In the environment, not on the command line, where ps shows the password to everyone.
        print(f"students connect with: GANFRIENDS_DATABASE_URL='{info.url()}' ganfriends worker")
        return 0
    if action == "stop":
        print("stopped" if server.stop() else "it was not running")
        return 0
    running = server.status()
    if running is None:
        raise GanError(
            f"no PostgreSQL is running in {server.data_dir}: start it with `ganfriends db start`"
        )
    if action == "url":
        print(running.url())
    else:
        print(f"running, pid {running.pid}, data in {running.data_dir}; url {running.url()}")
    return 0


def coordinator(config: Config) -> int:
    """Run (or resume) the class run."""
    from ganfriends.classroom.coordinator import Coordinator

    console = _console()
    # One connection stays checked out for the run's advisory lock: the pool needs more.
    with open_database(config, start_embedded=True, max_size=4) as db:
        migrate(db)
        with graceful_stop() as stop:
            result = Coordinator(db, config, console=console).run(stop)
    return 0 if result.complete else 130


def worker(config: Config, *, max_units: int | None) -> int:
    """Contribute to the class run."""
    from ganfriends.classroom.worker import Worker

    if configured_url(config) is None and embedded_url(start=False) is None and sys.stdin.isatty():
        # No URL anywhere: ask, without echo, rather than have it typed on the command line.
        config.database.url = getpass.getpass("Database URL from your instructor: ").strip()
    with (
        graceful_stop(config.worker.stop_grace) as stop,
        open_database(config, start_embedded=False, max_size=3) as db,
    ):
        Worker(db, config, console=_console()).run(stop, max_units=max_units)
    return 130 if stop.requested else 0


def status(config: Config, *, as_json: bool) -> int:
    """Print where the run stands."""
    from ganfriends.classroom.status import read_status, render

    url = resolve_url(config, start_embedded=False)
    from ganfriends.db import Database

    with Database(url, max_size=1) as db:
        current = read_status(db)
    if current is None:
        raise GanError("the database holds no run yet: start one with `ganfriends coordinator`")
    if as_json:
        print(json.dumps(current.to_json(), indent=2, default=str))
    else:
        render(current, _console())
    return 0


def dashboard(config: Config, *, port: int, address: str) -> int:
    """Serve the read-only dashboard until Ctrl+C."""
    from ganfriends.dashboard.launch import run_dashboard

    return run_dashboard(resolve_url(config, start_embedded=False), port, address=address)


def demo(args: Any) -> int:
    """A coordinator and N workers on this machine through the embedded PostgreSQL."""
    from ganfriends.classroom.demo import DemoSettings, run_demo

    settings = DemoSettings(
        workdir=Path(args.workdir),
        workers=args.workers,
        epochs=args.epochs,
        max_iterations=args.max_iterations,
        seed=args.seed,
        dashboard_port=args.dashboard_port if args.dashboard else None,
    )
    if settings.workers < 1:
        raise GanError("--workers must be at least 1")
    return run_demo(settings, _console())
