"""Handlers of the class-training commands: init-db, db, coordinator, worker, status, demo."""

from __future__ import annotations

import getpass
import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ganfriends.classroom import queue
from ganfriends.classroom.connect import configured_url, embedded_url, open_database, resolve_url
from ganfriends.config import Config
from ganfriends.db import EmbeddedPostgres, default_data_dir, migrate, pending, reset
from ganfriends.db.server import ServerInfo
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


def db_command(
    action: str,
    *,
    data_dir: str | None,
    listen: str | None,
    port: int | None,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    plaintext: bool = False,
) -> int:
    """``ganfriends db start|stop|url|status`` for the embedded server."""
    if listen is None and (plaintext or tls_cert or tls_key):
        raise GanError("--tls-cert, --tls-key and --insecure-plaintext go with --listen")
    if plaintext and (tls_cert or tls_key):
        raise GanError("--insecure-plaintext and --tls-cert/--tls-key exclude each other")
    server = EmbeddedPostgres(
        Path(data_dir) if data_dir else default_data_dir(),
        listen=listen,
        port=port,
        plaintext=plaintext,
        tls_cert=Path(tls_cert) if tls_cert else None,
        tls_key=Path(tls_key) if tls_key else None,
    )
    if action == "start":
        info = server.start()
        print(f"PostgreSQL is running (data in {info.data_dir})")
        _describe_transport(info)
        # Never the owner's URL: it holds the password of the role that owns every table, and
        # whoever has it can rewrite or drop the run. Students get logins of their own.
        print(
            "add each student with `ganfriends students add NAME`: it prints that student's own "
            "URL (your own is `ganfriends db url`: keep it to yourself)"
        )
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
        # The one place the owner's URL is shown: stdout for `$(ganfriends db url)`, the note on
        # stderr so that it does not end up in the variable.
        print(running.url())
        print(
            "(the owner's URL, for your own commands: give students `ganfriends students add` "
            "URLs instead)",
            file=sys.stderr,
        )
    else:
        print(f"running, pid {running.pid}, data in {running.data_dir}")
        _describe_transport(running)
    return 0


def _describe_transport(info: ServerInfo) -> None:
    if info.host is None:
        return
    if info.tls is None:
        print(
            f"WARNING: listening on {info.host} port {info.port} WITHOUT TLS: anyone on the "
            "network can read the traffic and take over sessions",
            file=sys.stderr,
        )
        return
    kind = "self-signed" if info.tls.self_signed else "given"
    print(f"TLS on {info.host} port {info.port}: {kind} certificate {info.tls.cert_file}")
    print(f"  for {', '.join(info.tls.names)}; SHA-256 fingerprint {info.tls.fingerprint}")


def coordinator(config: Config) -> int:
    """Run (or resume) the class run."""
    from ganfriends.classroom.coordinator import Coordinator

    console = _console()
    # One connection stays checked out for the run's lock: the pool needs more.
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


def students(
    config: Config,
    *,
    action: str,
    name: str | None,
    max_connections: int | None,
    output: str | None,
) -> int:
    """``ganfriends students add|list|revoke|pardon|reissue``: per-student login roles for the
    class database. ``add --roster FILE`` adds a whole class at once, ``revoke --all`` ends it,
    ``reissue`` gives a student a new URL. ``pardon`` lifts a student's quarantine in the
    running run (their earlier rejected uploads stop counting).

    On the embedded server the commands act through its superuser (over the socket, which only
    this machine's owner reaches); with ``--db`` they act as that role, which needs CREATEROLE.
    """
    from ganfriends.classroom.roster import class_admin
    from ganfriends.db import students as roles

    admin = class_admin(config)
    url, admin_url = admin.url, admin.admin_url
    console = _console()
    if action == "list":
        table = Table("student", "login", "sessions", "connection limit", "workers", "units",
                      "last seen")  # fmt: skip
        for s in roles.list_students(admin_url):
            table.add_row(
                Text(s.name), "yes" if s.can_login else "revoked", str(s.sessions),
                str(s.connection_limit), str(s.workers), str(s.units),
                s.last_seen.strftime("%Y-%m-%d %H:%M:%S") if s.last_seen else "-",
            )  # fmt: skip
        console.print(table)
        _print_flagged(url, console)
        return 0
    assert name is not None
    if action == "pardon":
        return _pardon(url, name, console)
    if action == "revoke":
        released = roles.revoke_student(admin_url, name)
        console.print(f"revoked {name}: sessions ended, {released} unit(s) back in the queue")
        return 0
    if max_connections is None:
        max_connections = roles.DEFAULT_CONNECTIONS
    password = roles.add_student(
        admin_url, name, max_connections=max_connections, lock_databases=admin.lock_databases
    )
    student_url = admin.url_maker()(name, password)
    for note in admin.notes(name):
        console.print(Text(note, style="yellow"))
    if output:
        path = Path(output)
        path.write_text(student_url + "\n", encoding="utf-8")
        path.chmod(0o600)
        console.print(f"{name}'s URL written to {path}")
    console.print(
        f"student {name} added ({max_connections} connections); they run: "
        "GANFRIENDS_DATABASE_URL='<the URL below>' ganfriends worker"
    )
    print(student_url)  # the last line: easy to copy or to pipe
    return 0


def _print_flagged(url: str, console: Console) -> None:
    """The latest run's students with strikes, timed-out leases or a quarantine."""
    from ganfriends.classroom.status import read_standing
    from ganfriends.db import Database

    with Database(url, max_size=1) as db:
        run = db.fetch_one("status_latest_run")
        flagged = [] if run is None else [s for s in read_standing(db, run["id"]) if s.flagged]
    for standing in flagged:
        console.print(Text(standing.describe(), style="red" if standing.quarantined else "yellow"))


def _pardon(url: str, name: str, console: Console) -> int:
    """Lift ``name``'s quarantine in the running run."""
    from ganfriends.classroom.status import read_standing
    from ganfriends.db import Database

    with Database(url, max_size=1) as db:
        run = queue.latest_running_run_id(db)
        if run is None:
            raise GanError("no run is running: there is no quarantine to lift")
        known = {s.student for s in read_standing(db, run)}
        if name not in known:
            raise GanError(f"{name} has no worker in run {run}: nothing to pardon")
        db.execute("pardon_student", run_id=run, student=name)
    console.print(f"pardoned {name} in run {run}: their earlier rejected uploads no longer count")
    return 0
