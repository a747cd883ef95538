"""Student roles for the integration tests: created through ``ganfriends.db.students``."""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo

from ganfriends.classroom.queue import Hardware
from ganfriends.db.students import DEFAULT_CONNECTIONS, add_student
from tests.waiting import wait_until

_names = itertools.count()
HARDWARE = Hardware("cpu", None, None, 2, 4.0)


@dataclass(frozen=True)
class Student:
    name: str
    url: str
    admin_url: str


def drop_roles(admin_url: str, *roles: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        for role in roles:
            if (
                conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
                is None
            ):
                continue
            conn.execute(f'DROP OWNED BY "{role}"')  # test clean-up, not product SQL
            conn.execute(f'DROP ROLE IF EXISTS "{role}"')


def new_student(db_url: str, admin_url: str, max_connections: int = DEFAULT_CONNECTIONS) -> Student:
    name = f"student_{os.getpid()}_{next(_names)}"
    password = add_student(admin_url, name, max_connections=max_connections)
    return Student(name, make_conninfo(db_url, user=name, password=password), admin_url)


def wait_for_transaction_age(
    observer_url: str, session: psycopg.Connection[Any], seconds: float
) -> None:
    """Wait until ``session``'s open transaction began over ``seconds`` ago by the server's
    clock, as the watchdog reads it (``observer_url`` must see the session's activity)."""
    pid = session.info.backend_pid
    with psycopg.connect(observer_url, autocommit=True) as observer:  # a fresh now() each time

        def old_enough() -> bool:
            row = observer.execute(
                "SELECT xact_start < now() - make_interval(secs => %s)"
                " FROM pg_stat_activity WHERE pid = %s",
                (seconds, pid),
            ).fetchone()
            return row is not None and bool(row[0])

        wait_until(old_enough, f"a transaction over {seconds} s old in session {pid}", timeout=10)
