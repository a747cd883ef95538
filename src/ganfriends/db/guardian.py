"""Stop an embedded PostgreSQL when the command that started it dies, however it dies.

``pg_ctl`` daemonizes the server, so no death signal reaches it from the command that started it
(``ganfriends demo``). That command starts this guardian with a pipe on its stdin and keeps the
write end: the kernel closes it when the command exits, SIGKILL included. End-of-file without the
word ``done`` first means the command died before cleaning up: the guardian stops the server.

    python -m ganfriends.db.guardian DATA_DIR        (started by :class:`Guardian`)
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
from pathlib import Path
from typing import IO

from ganfriends.db.errors import DatabaseError
from ganfriends.db.server import EmbeddedPostgres

DONE = b"done\n"


class Guardian:
    """The parent's side: start the guardian, then :meth:`release` it after a clean stop."""

    def __init__(self, data_dir: Path, log: IO[str] | None = None) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "ganfriends.db.guardian", str(data_dir)],
            stdin=subprocess.PIPE,
            stdout=log or subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            # Its own session: the terminal's Ctrl+C or hang-up goes to the command, not here.
            start_new_session=True,
        )

    def release(self) -> None:
        """The server was stopped (or is meant to stay): the guardian exits without acting."""
        stdin = self._proc.stdin
        assert stdin is not None
        with contextlib.suppress(OSError):
            stdin.write(DONE)
            stdin.close()
        self._proc.wait()


def guard(data_dir: Path, stdin: IO[bytes]) -> bool:
    """Block until ``stdin`` ends; stop the server unless the parent said ``done``. True if
    stopped."""
    if stdin.read() == DONE:
        return False
    return EmbeddedPostgres(data_dir).stop()


def main(argv: list[str]) -> int:
    """Entry point of ``python -m ganfriends.db.guardian DATA_DIR``."""
    for sig in (signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)  # only end-of-file or SIGTERM/SIGKILL end us
    try:
        stopped = guard(Path(argv[0]), sys.stdin.buffer)
    except DatabaseError as exc:
        print(f"guardian: could not stop the server in {argv[0]}: {exc}", flush=True)
        return 1
    if stopped:
        print(f"guardian: its command died; stopped the server in {argv[0]}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
