"""Error translation and the retry-with-backoff helper (no server needed)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import psycopg
import pytest
from psycopg import errors
from psycopg_pool import PoolTimeout

from ganfriends.db.connection import retrying
from ganfriends.db.errors import DatabaseError, DatabaseUnavailable, StoppedWaiting, translate_error
from ganfriends.errors import GanError


@pytest.mark.parametrize(
    "exc",
    [
        psycopg.OperationalError("connection failed:\n\tIs the server running?"),
        PoolTimeout("couldn't get a connection after 1.00 sec"),
        errors.AdminShutdown("terminating connection due to administrator command"),
        errors.CannotConnectNow("the database system is starting up"),
        errors.TooManyConnections("sorry, too many clients already"),
        errors.ConnectionFailure("connection failure"),
    ],
)
def test_connection_failures_are_unavailable(exc: psycopg.Error) -> None:
    translated = translate_error(exc)
    assert isinstance(translated, DatabaseUnavailable)
    assert "\n" not in str(translated)


@pytest.mark.parametrize(
    "exc",
    [
        errors.UniqueViolation("duplicate key"),
        errors.SerializationFailure("could not serialize access"),
        errors.UndefinedTable("relation does not exist"),
        psycopg.ProgrammingError("query parameter missing: x"),
    ],
)
def test_other_errors_are_plain_database_errors(exc: psycopg.Error) -> None:
    translated = translate_error(exc)
    assert type(translated) is DatabaseError
    assert isinstance(translated, GanError)
    assert translated.sqlstate == exc.sqlstate


def _flaky(failures: int) -> tuple[list[int], Callable[[], str]]:
    calls: list[int] = []

    def fn() -> str:
        calls.append(1)
        if len(calls) <= failures:
            raise DatabaseUnavailable("down")
        return "ok"

    return calls, fn


def test_backs_off_exponentially_up_to_the_cap() -> None:
    calls, fn = _flaky(9)
    sleeps: list[float] = []
    retried: list[tuple[int, float]] = []
    result = retrying(
        fn,
        on_retry=lambda attempt, delay, exc: retried.append((attempt, delay)),
        sleep=sleeps.append,
    )
    assert result == "ok" and len(calls) == 10
    assert sleeps == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]
    assert retried == list(enumerate(sleeps, start=1))


def test_gives_up_after_max_wait() -> None:
    calls, fn = _flaky(100)
    sleeps: list[float] = []
    with pytest.raises(DatabaseUnavailable):
        retrying(fn, max_wait=4, sleep=sleeps.append)
    assert sleeps == [0.5, 1, 2]  # the next wait (4 s) would pass 4 s in total
    assert len(calls) == 4


def test_other_errors_are_not_retried() -> None:
    def fn() -> None:
        raise DatabaseError("syntax error")

    sleeps: list[float] = []
    with pytest.raises(DatabaseError, match="syntax"):
        retrying(fn, sleep=sleeps.append)
    assert sleeps == []


def test_a_stop_ends_the_wait_at_once_with_stopped_waiting() -> None:
    calls, fn = _flaky(100)
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    started = time.monotonic()
    with pytest.raises(StoppedWaiting):
        retrying(fn, stop=stop)  # waits 0.5 s first: the stop comes during it
    assert time.monotonic() - started < 0.45
    assert len(calls) == 1


def test_a_stop_already_requested_is_not_waited_for() -> None:
    calls, fn = _flaky(100)
    stop = threading.Event()
    stop.set()
    with pytest.raises(StoppedWaiting):
        retrying(fn, stop=stop)
    assert len(calls) == 1
