"""The instructor's checks: can the class run on this server?

The database is the one the coordinator uses (``--db``, ``GANFRIENDS_DATABASE_URL``, config.yaml,
else the embedded server in the data directory, which the doctor never starts). The checks: the
server and the instructor's login, the schema, the address students connect to, the certificate
they get, free connection slots for the expected workers, disk space, and the coordinator.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import psycopg

from ganfriends.classroom.connect import OUTAGE_NOTICE, configured_url
from ganfriends.config import Config
from ganfriends.db import Database, EmbeddedPostgres, default_data_dir, pending
from ganfriends.db.server import WILDCARD_HOSTS, ServerInfo
from ganfriends.doctor import network
from ganfriends.doctor.checks import Found, Report, attempt, fail, ok, skip, warn
from ganfriends.doctor.network import APPLICATION, Target
from ganfriends.doctor.tls import check_certificate

# A worker holds its pool (3 connections) and its wake-up listener (classroom.commands.worker).
CONNECTIONS_PER_WORKER = 4
GIB = 2**30
DISK_FAIL = 1 * GIB  # below this, a run's checkpoints and the database's blobs soon fill it
DISK_WARN = 5 * GIB
LOCAL_LISTEN = ("", "localhost", "127.0.0.1", "::1")
AFTER_LOGIN = ("schema", "listen", "certificate", "connections", "disk", "coordinator")


@dataclass(frozen=True)
class Server:
    """The class's database as the instructor reaches it."""

    target: Target  # the instructor's own URL
    embedded: ServerInfo | None  # the embedded server, when that is the one


def check_server(config: Config, url: str | None) -> Found[Server]:
    """The database the coordinator would use, and a login to it."""
    explicit = url or configured_url(config)
    if explicit:
        server = Server(network.parse_url(explicit), None)
        where = f"{server.target.describe()}, configured"
    else:
        info = EmbeddedPostgres(default_data_dir()).status()
        if info is None:
            return Found(
                fail("server", f"no database configured, and the embedded server in "
                     f"{default_data_dir()} is not running: start it for the class with "
                     "`ganfriends db start --listen 0.0.0.0` (or set GANFRIENDS_DATABASE_URL)")
            )  # fmt: skip
        server = Server(network.parse_url(info.local_url()), info)
        where = f"the embedded PostgreSQL in {info.data_dir} (pid {info.pid})"
    try:
        network.connect(server.target).close()
    except psycopg.OperationalError as exc:
        return Found(fail("server", network.login_advice(exc, server.target)))
    return Found(ok("server", where), server)


def check_schema(db: Database) -> Found[None]:
    """Whether the database holds the current schema."""
    todo = [m.name for m in pending(db)]
    if todo:
        return Found(
            warn("schema", f"{len(todo)} migration(s) to apply ({', '.join(todo)}): the "
                 "coordinator applies them when it starts, or run `ganfriends init-db` now")
        )  # fmt: skip
    return Found(ok("schema", "up to date"))


def check_listen(server: Server, settings: dict[str, Any]) -> Found[Target]:
    """The address students connect to; the TCP target to check its certificate on."""
    info = server.embedded
    if info is not None:
        if info.host is None:
            return Found(
                fail("listen", "the embedded server listens on this machine's socket only: "
                     "students cannot reach it; restart it on the network: `ganfriends db stop`, "
                     "then `ganfriends db start --listen 0.0.0.0`")
            )  # fmt: skip
        students = network.parse_url(info.url())
        return Found(
            ok("listen", f"{info.host} port {info.port}: students connect to {students.where}"),
            students,
        )  # fmt: skip
    listening = str(settings["listen_addresses"])
    if listening.strip() in LOCAL_LISTEN:
        return Found(
            fail("listen", f"the server listens on {listening!r} only: students cannot reach "
                 "it; its listen_addresses must name a network address (or '*')")
        )  # fmt: skip
    target = server.target
    if target.loopback:
        # The certificate is still checked, where the server listens on this machine.
        first = listening.split(",")[0].strip()
        here = replace(target, host="127.0.0.1" if first in WILDCARD_HOSTS else first)
        return Found(
            warn("listen", f"the server listens on {listening!r}, but your URL names this "
                 f"machine ({target.where}): students need its network address in theirs"),
            here,
        )  # fmt: skip
    return Found(ok("listen", f"{target.where} (the server listens on {listening!r})"), target)


def check_connections(settings: dict[str, Any], workers: int | None) -> Found[None]:
    """Free connection slots against the workers expected."""
    kept = settings["superuser_slots"] + settings["reserved_slots"]
    free = settings["max_connections"] - kept - settings["sessions"]
    expected = settings["students"] if workers is None else workers
    needed = expected * CONNECTIONS_PER_WORKER
    slots = f"{free} of {settings['max_connections']} connection slots free for students"
    if workers is None and expected == 0:
        return Found(
            warn("connections", f"{slots}; no student added yet (`ganfriends students add NAME` "
                 "prints each one's URL)")
        )  # fmt: skip
    whose = f"{expected} worker(s)" + (" (one per student)" if workers is None else "")
    if free < needed:
        return Found(
            fail("connections", f"{slots}, but {whose} need {needed} ({CONNECTIONS_PER_WORKER} "
                 "each): raise the server's max_connections, or run fewer workers")
        )  # fmt: skip
    return Found(ok("connections", f"{slots}; {whose} need {needed}"))


def free_space(path: Path) -> tuple[Path, int]:
    """The free bytes on the disk that holds ``path`` (or would: its nearest existing folder)."""
    path = path.expanduser().absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path, shutil.disk_usage(path).free


def check_disk(server: Server, config: Config, settings: dict[str, Any]) -> Found[None]:
    """Free space where the database lives (when on this machine) and where outputs go."""
    places: list[tuple[str, Path, int]] = []
    if server.embedded is not None:
        places.append(("the database", *free_space(server.embedded.data_dir)))
    places.append(("the outputs", *free_space(Path(config.coordinator.output_dir))))
    parts = [f"{free / GIB:,.1f} GiB free for {what} ({where})" for what, where, free in places]
    if server.embedded is None:
        parts.append(
            f"the database holds {settings['database_bytes'] / 1e6:,.0f} MB on its server "
            "(whose disk is not visible from here)"
        )
    line = "; ".join(parts)
    least = min(free for _, _, free in places)
    if least < DISK_FAIL:
        return Found(fail("disk", f"{line}: free some space before the run"))
    if least < DISK_WARN:
        return Found(warn("disk", f"{line}: little room for checkpoints and weights"))
    return Found(ok("disk", line))


def check_coordinator(db: Database) -> Found[None]:
    """Whether the running run has its coordinator (the holder of its lock, alive)."""
    row = db.fetch_one("doctor_coordinator")
    if row is None:
        return Found(
            warn("coordinator", "no run is running: `ganfriends coordinator` starts one "
                 "(students' workers wait for it)")
        )  # fmt: skip
    version = f"version {row['version']} of {row['total_versions']}"
    run = f"run {row['run_id']} ({row['mode']}, {version})"
    if not row["alive"]:
        return Found(
            fail("coordinator", f"{run} has no coordinator: students' uploads wait unused; start "
                 f"`ganfriends coordinator` (it resumes run {row['run_id']})")
        )  # fmt: skip
    since = row["seconds_since_update"]
    last = "no update yet" if since is None else f"last update {since:,.0f} s ago"
    return Found(
        ok("coordinator", f"{run}: held by session {row['holder_pid']} since "
           f"{row['taken_at']:%H:%M:%S}, {last}")
    )  # fmt: skip


def check_instructor(
    config: Config, url: str | None, *, workers: int | None, report: Report
) -> int:
    """Every instructor check in order, each line handed to ``report`` as it comes; the exit
    status (0: the class can run)."""
    server = report.take(check_server(config, url))
    if server is None:
        report.skip(AFTER_LOGIN, "needs the server")
        return report.exit_status
    with Database(
        server.target.url, min_size=1, max_size=1, application_name=APPLICATION,
        timeout=OUTAGE_NOTICE,
    ) as db:  # fmt: skip
        report.take(attempt("schema", check_schema, db))
        settings = db.fetch_one("doctor_server")
        assert settings is not None
        students = report.take(attempt("listen", check_listen, server, settings))
        if students is None:
            report.add(skip("certificate", "needs an address students reach"))
        else:
            expected = None if server.embedded is None else server.embedded.tls
            report.take(attempt("certificate", check_certificate, students, expected))
        report.take(attempt("connections", check_connections, settings, workers))
        report.take(attempt("disk", check_disk, server, config, settings))
        report.take(attempt("coordinator", check_coordinator, db))
    return report.exit_status
