"""How the coordinator waits for a version's results (``coordinator``'s loop, between two
publications).

Woken by each accepted upload (LISTEN/NOTIFY), polling as the fallback, it counts the version's
done units and reads each new copy as soon as it arrives (``intake``: fetched and validated once,
while the rest of the version is computed), so that the update only fetches the last arrivals.
Every RUN_CHECK_SECONDS it also makes sure the run is still its own: the run's lock (re-taken
after a database restart), the run's state, and no student session holding the run's rows in a
transaction left open (``watchdog``). An outage is waited out around the whole check.
"""

from __future__ import annotations

import time

from rich.console import Console

from ganfriends.classroom import queue
from ganfriends.classroom.intake import Intake, Valid
from ganfriends.classroom.state import RunState
from ganfriends.classroom.watchdog import Watchdog
from ganfriends.db import Database, StoppedWaiting, retrying
from ganfriends.db.notifications import Listener
from ganfriends.db.session_lock import LockLost, SessionLock
from ganfriends.errors import GanError
from ganfriends.signals import StopRequest

RUN_CHECK_SECONDS = 2.0  # how often a waiting coordinator checks that its run still runs


class RunLocked(GanError):
    """Another coordinator is already running this run."""


class RunStopped(GanError):
    """The run was stopped or removed in the database while this coordinator drove it."""


class ResultsWaiter:
    """Waits for the versions of one coordinator's run, reading results as they arrive."""

    def __init__(
        self, db: Database, console: Console, watchdog: Watchdog, poll_interval: float
    ) -> None:
        self.db = db
        self.console = console
        self.watchdog = watchdog
        self.poll_interval = poll_interval
        self.intake = Intake()
        self._checked_at = 0.0  # when the run's lock and state were last checked
        self._read_done = 0  # units with a result when the intake last read the version

    def published(self) -> None:
        """A new version is out: its results start from none."""
        self._read_done = 0

    def wait(
        self,
        state: RunState,
        stop: StopRequest,
        published_at: float,
        lock: SessionLock,
        wakeups: Listener,
    ) -> list[Valid] | None:
        """Wait until the rule may combine this version's valid results; None if asked to stop.

        Woken by each accepted upload, polling as the fallback. An outage is waited out by
        :func:`ganfriends.db.retrying` around the whole check, reading and validating included.
        """
        poll = self.poll_interval
        self._checked_at = time.monotonic()

        def unreachable(attempt: int, delay: float, exc: Exception) -> None:
            self.console.print(f"[yellow]database unreachable ({exc}); retrying[/]")

        while not stop.requested:
            try:
                valid = retrying(
                    lambda: self._results_if_ready(state, lock, published_at),
                    on_retry=unreachable,
                    stop=stop.event,
                )
            except StoppedWaiting:
                return None
            if valid is not None:
                return valid
            wakeups.wait(poll, stop.event)
        return None

    def _results_if_ready(
        self, state: RunState, lock: SessionLock, published_at: float
    ) -> list[Valid] | None:
        """This version's valid results if the rule may combine them now, else None (a rejected
        result's unit is back in the queue: keep waiting)."""
        if time.monotonic() - self._checked_at >= RUN_CHECK_SECONDS:
            self._check_still_ours(state.run_id, lock)
            self._checked_at = time.monotonic()
        counts = queue.count_units(self.db, state.run_id, state.version)
        if counts.total == 0:
            raise GanError(
                f"run {state.run_id} has no work units for version {state.version}: "
                "the database was changed under the coordinator"
            )
        waited = time.monotonic() - published_at
        if counts.done == 0 or not state.rule.ready(counts.done, counts.total, waited):
            if counts.done != self._read_done:  # read and check what arrived, while others compute
                self._read_done = counts.done
                self.intake.results(self.db, state, self.console)
            return None
        self._read_done = counts.done
        valid = self.intake.results(self.db, state, self.console)
        if valid is None or not state.rule.ready(len(valid), counts.total, waited):
            return None
        if len(valid) < counts.total:
            self.console.print(
                f"version {state.version}: closing with {len(valid)} of "
                f"{counts.total} units after {waited:.0f}s (quorum)"
            )
        return valid

    def _check_still_ours(self, run_id: int, lock: SessionLock) -> None:
        """Raise :class:`RunLocked` when another coordinator took the run's lock while a server
        restart had dropped ours, :class:`RunStopped` when the run no longer runs."""
        try:
            lock.ensure()
        except LockLost as exc:
            raise RunLocked(
                f"run {run_id}'s lock went with a database restart and another coordinator "
                "holds it now: stopping here (the run goes on under that coordinator)"
            ) from exc
        self.watchdog.sweep()
        current = queue.run_state(self.db, run_id)
        if current != "running":
            raise RunStopped(
                f"run {run_id} is {current or 'gone'} in the database: someone stopped it while "
                "this coordinator was driving it (SQL, or an administrator); stopping here"
            )
