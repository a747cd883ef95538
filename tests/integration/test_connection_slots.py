"""Students filling the server's connections cannot lock the instructor out (the "197
connections" of the issue): each student has a connection limit, and the server keeps slots
that only the instructor's role may use."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from ganfriends.db import Database, EmbeddedPostgres, migrate, server
from ganfriends.db.server import APP_DATABASE
from ganfriends.db.students import add_student

MAX_CONNECTIONS = 20  # 3 kept for superusers, RESERVED_CONNECTIONS for the instructor


@pytest.fixture
def small_server(pg_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[EmbeddedPostgres]:
    monkeypatch.setattr(server, "MAX_CONNECTIONS", MAX_CONNECTIONS)
    embedded = EmbeddedPostgres(pg_dir, durable=False)
    info = embedded.start()
    with Database(info.url(), max_size=1) as db:
        migrate(db)
    try:
        yield embedded
    finally:
        embedded.stop()


def test_students_cannot_take_the_instructors_slots(small_server: EmbeddedPostgres) -> None:
    info = small_server.start()
    admin_url = info.admin_url(APP_DATABASE)
    students = [f"student_{i}" for i in range(4)]  # 4 x 4 = 16 connections wanted
    urls = [
        make_conninfo(info.url(), user=name, password=add_student(admin_url, name))
        for name in students
    ]
    opened: list[psycopg.Connection] = []
    refused: list[str] = []
    try:
        for url in urls:
            for _ in range(4):
                try:
                    opened.append(psycopg.connect(url, connect_timeout=5))
                except psycopg.OperationalError as exc:
                    refused.append(str(exc))
        # Students got every slot but the superusers' 3 and the instructor's reserved ones.
        available = MAX_CONNECTIONS - 3 - server.RESERVED_CONNECTIONS
        assert len(opened) == available
        assert refused and all("reserved" in message for message in refused)
        # The instructor still gets in: the coordinator, `status`, `students revoke`.
        instructor = [psycopg.connect(info.url(), connect_timeout=5) for _ in range(3)]
        for conn in instructor:
            assert conn.execute("SELECT current_user").fetchone() == ("ganfriends",)
            conn.close()
    finally:
        for conn in opened:
            conn.close()
