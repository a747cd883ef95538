"""A managed PostgreSQL for the tests: a server the instructor does not own as superuser.

Hosted PostgreSQL services give the customer a role with CREATEROLE and CREATEDB that owns its
databases but is no superuser and holds none of ``pg_read_all_stats``, ``pg_signal_backend``
or ``pg_use_reserved_connections``. This starts Debian's PostgreSQL 15 (``make postgres``
installs it) in a private cluster with such a role, ``instructor``, owning the database
``class``: password logins (SCRAM) over TLS only, a self-signed certificate for 127.0.0.1.

The cluster lives under ``/tmp``, not pytest's temp root: another pytest session on this machine
re-chmods that root to 0700, and a server running as another OS user (we may be root) would
lose its files mid-test. As root, the server programs run as ganfriends' own server user, as
the embedded server does (:mod:`ganfriends.db._pgctl`).
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql as pgsql

from ganfriends.db import admin, tls
from ganfriends.db._pgctl import SERVER_OS_USER, PgCtl, free_port

DEBIAN_POSTGRESQL = Path("/usr/lib/postgresql")
PREFERRED_MAJOR = "15"  # Debian 12's; the issue was found there
INSTRUCTOR = "instructor"
DATABASE = "class"
HBA = """\
local      all   postgres                 trust
hostssl    all   all        127.0.0.1/32  scram-sha-256
hostnossl  all   all        127.0.0.1/32  reject
"""


def debian_bin_dir() -> Path | None:
    """Debian's server programs (PostgreSQL 15 if there, else the newest), or None."""
    found = sorted(
        (p for p in DEBIAN_POSTGRESQL.glob("*/bin") if (p / "initdb").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    preferred = [p for p in found if p.parent.name == PREFERRED_MAJOR]
    candidates = preferred or found
    return candidates[-1] if candidates else None


@dataclass(frozen=True)
class ManagedServer:
    """The running server and the instructor's view of it."""

    url: str  # the instructor's URL: TCP, a password, sslmode=require
    superuser_url: str  # the cluster's superuser over its socket: the provider, for set-up only
    port: int
    cert_file: Path


def _server_user() -> pwd.struct_passwd | None:
    return pwd.getpwnam(SERVER_OS_USER) if os.geteuid() == 0 else None


def _run(args: list[str], base: Path) -> None:
    """Run a server program, as the server's OS user when we are root."""
    user = _server_user()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    # A file, not a pipe: the detached postmaster would inherit a pipe and keep it open.
    with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as output:
        if user is None:
            result = subprocess.run(
                args, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                env=env, cwd=base, timeout=120, check=False,
            )  # fmt: skip
        else:
            result = subprocess.run(
                args, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                env=env, cwd=base, timeout=120, check=False,
                user=user.pw_uid, group=user.pw_gid, extra_groups=[],
            )  # fmt: skip
        output.seek(0)
        if result.returncode != 0:
            log = base / "server.log"
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            raise RuntimeError(f"{' '.join(args[:1])} failed:\n{output.read()}\n{tail}")


def _give(path: Path) -> None:
    user = _server_user()
    if user is not None:
        os.chown(path, user.pw_uid, user.pw_gid)


@contextmanager
def managed_server(bin_dir: Path) -> Iterator[ManagedServer]:
    """Start the cluster, create the instructor's role and database; stop and delete after."""
    base = Path(tempfile.mkdtemp(prefix="ganfriends-managed-pg-"))
    pgdata, sockets = base / "data", base / "run"
    PgCtl(pgdata).prepare_os_user()  # as root: the server user, and o+x on base's ancestors
    started = False
    try:
        sockets.mkdir(mode=0o700)
        certificate = tls.install(base / "tls", ["127.0.0.1"])
        for path in (base, sockets, base / "tls", certificate.cert_file, certificate.key_file):
            _give(path)
        initdb = [str(bin_dir / "initdb"), "-D", str(pgdata), "-U", "postgres", "-E", "UTF8"]
        _run([*initdb, "--auth-local=trust", "--no-locale", "--no-sync"], base)
        port = free_port()
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(port),
            "unix_socket_directories": f"'{sockets}'",
            "ssl": "on",
            "ssl_cert_file": f"'{certificate.cert_file}'",
            "ssl_key_file": f"'{certificate.key_file}'",
            "max_connections": "40",
            "fsync": "off",  # a test server: nothing here must survive a crash
            "synchronous_commit": "off",
            "full_page_writes": "off",
        }
        with open(pgdata / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
        (pgdata / "pg_hba.conf").write_text(HBA, encoding="utf-8")
        _run([str(bin_dir / "pg_ctl"), "-D", str(pgdata), "-l", str(base / "server.log"),
              "-w", "-t", "60", "start"], base)  # fmt: skip
        started = True

        superuser_url = f"postgresql://postgres@/postgres?host={sockets}&port={port}"
        password = secrets.token_urlsafe(18)
        with psycopg.connect(superuser_url, autocommit=True) as conn:
            verifier = conn.pgconn.encrypt_password(
                password.encode(), INSTRUCTOR.encode(), b"scram-sha-256"
            ).decode()
            # What a hosted service's customer role has: CREATEROLE and CREATEDB, no superuser,
            # no predefined roles.
            conn.execute(
                pgsql.SQL("CREATE ROLE {} LOGIN CREATEROLE CREATEDB PASSWORD {}").format(
                    pgsql.Identifier(INSTRUCTOR), pgsql.Literal(verifier)
                )
            )
        admin.create_database(superuser_url, DATABASE, owner=INSTRUCTOR)
        yield ManagedServer(
            url=f"postgresql://{INSTRUCTOR}:{password}@127.0.0.1:{port}/{DATABASE}?sslmode=require",
            superuser_url=superuser_url,
            port=port,
            cert_file=certificate.cert_file,
        )
    finally:
        if started:
            _run([str(bin_dir / "pg_ctl"), "-D", str(pgdata), "-m", "immediate", "-w", "stop"],
                 base)  # fmt: skip
        shutil.rmtree(base, ignore_errors=True)
