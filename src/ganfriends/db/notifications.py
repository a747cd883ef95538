"""LISTEN/NOTIFY wake-ups: an idle process waits on a channel instead of sleeping blind.

The coordinator notifies "ganfriends_work" when it publishes a version or puts a unit back in
the queue, and every accepted upload notifies "ganfriends_results" (``worker_submit_result``).
Notifications are hints, never the source of truth: a waiter still polls at its own interval,
so a notification lost to a broken connection or a server restart costs one poll interval, and
a spurious one (anyone in the database may NOTIFY) costs one extra query.
"""

from __future__ import annotations

import threading
import time
from contextlib import suppress
from typing import Any

import psycopg

STOP_CHECK = 0.2  # seconds: how often a wait looks at its stop event
RECONNECT_EVERY = 5.0  # seconds between attempts to listen again after losing the connection


class Listener:
    """A connection of its own, LISTENing with ``listen_sql``; :meth:`wait` ends at the first
    notification. Notifications that arrive between two waits are kept by libpq, so one sent
    just before a wait is not missed."""

    def __init__(self, conninfo: str, listen_sql: str) -> None:
        self._conninfo = conninfo
        self._listen_sql = listen_sql
        self._conn: psycopg.Connection[Any] | None = None
        self._next_attempt = 0.0
        self._connect()

    def _connect(self) -> None:
        self._next_attempt = time.monotonic() + RECONNECT_EVERY
        try:
            conn = psycopg.connect(self._conninfo, autocommit=True)
        except psycopg.Error:
            return  # polling goes on; the next wait tries again
        try:
            conn.execute(self._listen_sql)
        except psycopg.Error:
            conn.close()
            return
        self._conn = conn

    def wait(self, timeout: float, stop: threading.Event) -> bool:
        """Block for up to ``timeout`` seconds; True as soon as a notification arrives, False on
        timeout or when ``stop`` is set."""
        deadline = time.monotonic() + timeout
        while not stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if self._conn is None and time.monotonic() >= self._next_attempt:
                self._connect()
            if self._conn is None:
                stop.wait(min(remaining, STOP_CHECK))
                continue
            try:
                for _ in self._conn.notifies(timeout=min(remaining, STOP_CHECK), stop_after=1):
                    return True
            except psycopg.Error:
                self.close()  # hints lost until the next attempt; the caller keeps polling
        return False

    def close(self) -> None:
        """Stop listening and close the connection."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with suppress(psycopg.Error):
                conn.close()
