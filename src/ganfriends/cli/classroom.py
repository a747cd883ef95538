"""The class commands: init-db, db, students, coordinator, worker, status, dashboard, demo."""

from __future__ import annotations

import argparse
from typing import Any

from ganfriends.cli.flags import command, config_from
from ganfriends.errors import GanError


def _worker(args: argparse.Namespace) -> int:
    from ganfriends.classroom import commands as classroom

    config = config_from(args)
    if args.gpus is None:
        return classroom.worker(config, max_units=args.max_units)
    import socket

    import torch

    from ganfriends.classroom.gpu_workers import child_commands, parse_gpus, run_workers

    gpus = parse_gpus(args.gpus, torch.cuda.device_count())
    name = config.worker.name or socket.gethostname()
    commands = child_commands(args.raw_argv, gpus, name)
    return run_workers(commands, [f"gpu{g}" for g in gpus])


def _students(args: argparse.Namespace) -> int:
    from ganfriends.classroom import commands as classroom

    _check_student_flags(args)
    if args.roster or args.all or args.action == "reissue":
        return _class_at_once(args)
    return classroom.students(
        config_from(args),
        action=args.action,
        name=args.name,
        max_connections=args.max_connections,
        output=args.output,
    )


def _check_student_flags(args: argparse.Namespace) -> None:
    """One line for a combination of ``students`` flags that means nothing."""
    if args.roster and (args.action != "add" or args.name):
        raise GanError("--roster FILE goes with `students add` and no NAME")
    if (args.urls_dir or args.urls_csv) and not args.roster:
        raise GanError("--urls-dir and --urls-csv go with `students add --roster FILE`")
    if args.output and (args.roster or args.action not in ("add", "reissue")):
        raise GanError("--output goes with `students add NAME` and `students reissue NAME`")
    if args.all and (args.action != "revoke" or args.name):
        raise GanError("--all goes with `students revoke` and no NAME")
    if args.yes and not args.all:
        raise GanError("--yes goes with `students revoke --all`")
    needs_name = ("add", "revoke", "pardon", "reissue")
    if args.action in needs_name and not (args.name or args.roster or args.all):
        raise GanError(f"students {args.action} needs the student's name")


def _class_at_once(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rich.console import Console

    from ganfriends.classroom import roster
    from ganfriends.db.students import DEFAULT_CONNECTIONS

    config, console = config_from(args), Console(soft_wrap=True)
    if args.all:
        return roster.revoke_all(config, yes=args.yes, console=console)
    if args.action == "reissue":
        return roster.reissue(config, args.name, output=args.output, console=console)
    outputs = roster.UrlOutputs(
        folder=Path(args.urls_dir) if args.urls_dir else None,
        table=Path(args.urls_csv) if args.urls_csv else None,
    )
    connections = DEFAULT_CONNECTIONS if args.max_connections is None else args.max_connections
    return roster.add_roster(
        config, Path(args.roster), outputs, max_connections=connections, console=console
    )


def _report(args: argparse.Namespace) -> int:
    """Per student of a run: units, images, compute seconds, first and last contribution,
    rejected copies, quarantine and share of the credited images; and the run's summary (images,
    steps, wall time, latest FID). For the instructor: a student's role is refused."""
    import json
    import sys
    from pathlib import Path

    from rich.console import Console
    from rich.text import Text

    from ganfriends.classroom.connect import resolve_url
    from ganfriends.classroom.report import build_report, render
    from ganfriends.classroom.roster import write_private
    from ganfriends.db import Database

    with Database(resolve_url(config_from(args), start_embedded=False), max_size=1) as db:
        report = build_report(db, args.run)
    if args.csv:  # first: the file is written even if the output below goes nowhere
        write_private(Path(args.csv), report.to_csv())  # grades: readable by you only
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
        return 0
    # A table piped to a file is not cut to 80 columns.
    console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)
    render(report, console)
    if args.csv:
        console.print(
            Text(f"wrote run {report.run.run_id}'s report ({len(report.students)} students) to "
                 f"{args.csv}")
        )  # fmt: skip
    return 0


def _db(args: argparse.Namespace) -> int:
    from ganfriends.classroom import commands as classroom

    where = ("data_dir", "listen", "port", "tls_cert", "tls_key", "plaintext")
    return classroom.db_command(args.action, **{name: getattr(args, name) for name in where})


def _add_roster_flags(pupils: argparse.ArgumentParser) -> None:
    """``students``' flags for a whole class: --roster, --urls-dir, --urls-csv, --all, --yes."""
    pupils.add_argument(
        "--roster",
        metavar="FILE",
        help="add: every student of FILE (one name a line, or a CSV with a name column; "
        "# comments) not yet in the class, in one go",
    )
    pupils.add_argument(
        "--urls-dir", metavar="DIR", help="with --roster: one URL file per new student in DIR"
    )
    pupils.add_argument(
        "--urls-csv", metavar="FILE", help="with --roster: the new students' URLs as CSV rows"
    )
    pupils.add_argument(
        "--all", action="store_true", help="revoke: every student of the class (asks first)"
    )
    pupils.add_argument("--yes", action="store_true", help="do not ask before revoke --all")


def add_class_commands(commands: Any, verbose: argparse.ArgumentParser) -> None:
    """init-db, db, students, coordinator, worker, status, dashboard and demo."""
    from ganfriends.classroom import commands as classroom

    init = command(
        commands, verbose, "init-db", "create or migrate the database schema",
        lambda a: classroom.init_db(config_from(a), do_reset=a.reset, yes=a.yes),
        "Create or migrate the schema (the embedded PostgreSQL when no --db is given).",
    )  # fmt: skip
    init.add_argument("--reset", action="store_true", help="delete everything first (asks)")
    init.add_argument("--yes", action="store_true", help="do not ask before --reset")

    db = command(
        commands, verbose, "db", "the embedded PostgreSQL: start, stop, url, status", _db,
        "Host the class database on this machine (no server to install).",
    )  # fmt: skip
    db.add_argument("action", choices=("start", "stop", "url", "status"))
    db.add_argument("--data-dir", help="cluster directory (default: $GANFRIENDS_PG_DIR or ours)")
    db.add_argument(
        "--listen",
        metavar="ADDR",
        help="also accept TCP connections on ADDR (e.g. 0.0.0.0): TLS and a password",
    )
    db.add_argument("--port", type=int, help="TCP port with --listen (default: a free one)")
    db.add_argument(
        "--tls-cert",
        metavar="FILE",
        help="PEM certificate served with --listen (default: a generated self-signed one)",
    )
    db.add_argument("--tls-key", metavar="FILE", help="the PEM private key of --tls-cert")
    db.add_argument(
        "--insecure-plaintext",
        dest="plaintext",
        action="store_true",
        help="with --listen: no TLS (anyone on the network can read and hijack sessions)",
    )

    pupils = command(
        commands, verbose, "students",
        "per-student database logins: add, list, revoke, pardon, reissue", _students,
        classroom.students.__doc__,
    )  # fmt: skip
    pupils.add_argument("action", choices=("add", "list", "revoke", "pardon", "reissue"))
    pupils.add_argument(
        "name", nargs="?", help="the student (add, revoke, pardon, reissue): a-z, 0-9, _"
    )
    _add_roster_flags(pupils)
    pupils.add_argument(
        "--max-connections",
        type=int,
        help="the student's connections (default: 5: a worker and a `status` beside it)",
    )
    pupils.add_argument(
        "--output", metavar="FILE", help="also write the student's URL to FILE (add, reissue)"
    )

    command(
        commands, verbose, "coordinator", "run (or resume) the class run",
        lambda a: classroom.coordinator(config_from(a)), classroom.coordinator.__doc__,
    )  # fmt: skip

    work = command(
        commands, verbose, "worker", "contribute to the class run", _worker,
        classroom.worker.__doc__,
    )  # fmt: skip
    work.add_argument("--max-units", type=int, help="exit after this many units")
    work.add_argument(
        "--gpus",
        metavar="all|0,1",
        help="one worker process per GPU, named NAME-gpu0, NAME-gpu1, ... (Ctrl+C stops them all)",
    )

    stat = command(
        commands, verbose, "status", "where the class run stands",
        lambda a: classroom.status(config_from(a), as_json=a.json), classroom.status.__doc__,
    )  # fmt: skip
    stat.add_argument("--json", action="store_true", help="machine-readable output")

    report = command(
        commands, verbose, "report", "per-student contributions to a run, for grading", _report
    )
    report.add_argument("--run", type=int, metavar="N", help="run N (default: as status)")
    report.add_argument("--csv", metavar="FILE", help="also write one row per student to FILE")
    report.add_argument("--json", action="store_true", help="machine-readable output")

    dash = command(
        commands, verbose, "dashboard", "live class dashboard in the browser (read-only)",
        lambda a: classroom.dashboard(config_from(a), port=a.port, address=a.address),
        "Serve the class dashboard (extra: pip install 'ganfriends[dashboard]').",
    )  # fmt: skip
    dash.add_argument("--port", type=int, default=8501, help="HTTP port (default: 8501)")
    dash.add_argument(
        "--address", default="127.0.0.1", help="listen address (0.0.0.0 for the whole class)"
    )

    demo = command(
        commands, verbose, "demo", "a coordinator and workers on this machine", classroom.demo
    )
    demo.add_argument("--workers", type=int, default=2, help="worker processes (default: 2)")
    demo.add_argument(
        "--workdir", default="demo", help="database, logs and samples (default: demo)"
    )
    demo.add_argument(
        "--max-iterations", type=int, help="stop after N updates (default: the 2 epochs)"
    )
    demo.add_argument("--seed", type=int, default=0, help="run seed (default: 0)")
    demo.add_argument("--epochs", type=int, default=2, help="epochs to train (default: 2)")
    demo.add_argument(
        "--dashboard", action="store_true", help="also start the dashboard and print its address"
    )
    demo.add_argument("--dashboard-port", type=int, default=8501, help="(default: 8501)")
