"""The coordinator's watchdog over students' sessions.

A student's role sets ``idle_in_transaction_session_timeout``, and so does the embedded server,
but PostgreSQL lets any session SET it back for itself. A student who keeps a transaction open
on purpose would hold row locks for good: a unit they claimed cannot be claimed by anyone else
(claims skip locked rows), and the coordinator's publish would wait on it. The coordinator ends
such sessions (``queries.sql``: ``end_stuck_student_sessions``) every few seconds while it waits,
and when a publish meets a lock (``publish_lock_timeout``).

PostgreSQL shows a session's transaction and lets it be ended only to superusers, to members of
``pg_read_all_stats`` and ``pg_signal_backend``, and to members of the session's role. Without
any of these (another instructor's students on a managed server), the query above silently sees
nothing, so the watchdog names the students it cannot reach, once each.
"""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

from ganfriends.classroom import queue
from ganfriends.db import Database, DatabaseError, DatabaseUnavailable

# Honest worker transactions last milliseconds; a minute is far beyond any of them and bounds
# how long one student can hold a version up.
STUCK_TRANSACTION_SECONDS = 60.0


class Watchdog:
    """Ends students' sessions that hold a transaction open for too long, and says so."""

    def __init__(self, db: Database, console: Console) -> None:
        self.db = db
        self.console = console
        self._failed = False
        self._unreachable: set[str] = set()

    def sweep(self, seconds: float = STUCK_TRANSACTION_SECONDS) -> None:
        """End students' sessions whose transaction is older than ``seconds``."""
        try:
            self._name_unreachable()
            ended = queue.end_stuck_student_sessions(self.db, seconds)
        except DatabaseUnavailable:
            raise
        except DatabaseError as exc:
            if not self._failed:  # once: it would fail the same way every few seconds
                self._failed = True
                self.console.print(
                    f"[yellow]cannot end stuck student sessions ({escape(str(exc))}): grant "
                    "pg_read_all_stats and pg_signal_backend to the coordinator's role[/]",
                    highlight=False,
                )
            return
        for session in ended:
            self.console.print(
                f"[yellow]ended[/] student {escape(session.role)}'s session (pid {session.pid}): "
                f"inside one transaction for {session.seconds:.0f}s, holding rows of the run",
                highlight=False,
            )

    def _name_unreachable(self) -> None:
        """Say once which students' sessions this role can neither see nor end, and why."""
        rows = self.db.fetch_all("students_out_of_reach")
        new = [str(r["name"]) for r in rows if r["name"] not in self._unreachable]
        if not new:
            return
        self._unreachable.update(new)
        self.console.print(
            f"[yellow]cannot end the sessions of student(s) {escape(', '.join(new))} if they hold "
            "the run up: this role is not a member of their roles and lacks pg_read_all_stats "
            "and pg_signal_backend (students added by this role with `ganfriends students add` "
            "are reachable)[/]",
            highlight=False,
        )
