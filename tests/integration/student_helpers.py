"""Student roles for the integration tests: created through ``ganfriends.db.students``."""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass

import psycopg
from psycopg.conninfo import make_conninfo

from ganfriends.classroom.queue import Hardware
from ganfriends.db.students import DEFAULT_CONNECTIONS, add_student

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
