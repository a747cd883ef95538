"""LISTEN/NOTIFY wake-ups on a real PostgreSQL: hints that end a wait early, never needed."""

from __future__ import annotations

import select
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from ganfriends.classroom import queue
from ganfriends.db import Database
from ganfriends.db.notifications import Listener
from tests.integration.queue_helpers import claim, new_run, one_lease, register, submit
from tests.waiting import wait_until


def in_call(thread: threading.Thread, function: str) -> bool:
    """Whether ``thread`` is inside a call of ``function`` (any frame of its stack) now."""
    frame = sys._current_frames().get(thread.ident or -1)
    while frame is not None:
        if frame.f_code.co_name == function:
            return True
        frame = frame.f_back
    return False


@contextmanager
def listening(db: Database, listen_query: str) -> Iterator[Listener]:
    """``db.listener(listen_query)``, closed at the end of the block."""
    listener = db.listener(listen_query)
    try:
        yield listener
    finally:
        listener.close()


def test_a_publish_wakes_a_waiting_listener_at_once(db: Database) -> None:
    run_id = new_run(db, units_per_update=1)
    with listening(db, "listen_work") as listener:
        woke: list[float] = []

        def wait() -> None:
            start = time.monotonic()
            if listener.wait(30, threading.Event()):
                woke.append(time.monotonic() - start)

        thread = threading.Thread(target=wait)
        thread.start()
        wait_until(lambda: in_call(thread, "notifies"), "the listener to be waiting")
        db.execute("notify_work", run_id=run_id)
        thread.join(timeout=10)
        assert woke and woke[0] < 5  # not the 30 s timeout


def test_a_notification_sent_before_the_wait_is_not_missed(db: Database) -> None:
    run_id = new_run(db, units_per_update=1)
    with listening(db, "listen_work") as listener:
        db.execute("notify_work", run_id=run_id)
        socket = listener._conn.pgconn.socket if listener._conn else -1  # before the wait: no API
        wait_until(
            lambda: select.select([socket], [], [], 0)[0], "the notification at the listener"
        )
        started = time.monotonic()
        assert listener.wait(30, threading.Event())
        assert time.monotonic() - started < 5


def test_an_accepted_upload_wakes_the_coordinator(db: Database) -> None:
    run_id, worker, lease = one_lease(db)
    with listening(db, "listen_results") as listener:
        assert submit(db, run_id, worker, lease["token"]) is not None
        assert listener.wait(30, threading.Event())


def test_a_refused_upload_wakes_nobody(db: Database) -> None:
    run_id = new_run(db, units_per_update=1)
    worker, other = register(db, run_id, "a"), register(db, run_id, "b")
    lease = claim(db, run_id, worker)
    assert lease is not None
    with listening(db, "listen_results") as listener:
        assert submit(db, run_id, other, lease["token"]) is None  # foreign token
        assert not listener.wait(0.5, threading.Event())


def test_a_stop_ends_the_wait_and_a_timeout_returns_false(db: Database) -> None:
    with listening(db, "listen_work") as listener:
        stop = threading.Event()
        threading.Timer(0.3, stop.set).start()
        started = time.monotonic()
        assert not listener.wait(30, stop)
        assert time.monotonic() - started < 5
        assert not listener.wait(0.2, threading.Event())


def test_a_rejected_copy_wakes_idle_workers_for_its_unit(db: Database) -> None:
    run_id, worker, lease = one_lease(db)
    assert submit(db, run_id, worker, lease["token"]) is not None
    (upload,) = queue.uploads(db, run_id, 0)
    with listening(db, "listen_work") as listener:
        queue.reject(db, run_id, upload, "bad")
        assert listener.wait(30, threading.Event())
