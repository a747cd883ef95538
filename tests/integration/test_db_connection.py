"""The connector against a real server: named queries, transactions, errors, outages, migrations."""

from __future__ import annotations

import datetime
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ganfriends.db import (
    Database,
    DatabaseError,
    DatabaseUnavailable,
    EmbeddedPostgres,
    UnknownQueryError,
    current_version,
    migrate,
    pending,
    reset,
    retrying,
)
from ganfriends.db._pgctl import free_port
from ganfriends.db.migrations import discover
from ganfriends.db.sql import parse_queries, queries

TEST_SQL = """
-- name: create_items
CREATE TABLE items (id integer PRIMARY KEY, blob bytea, label text);

-- name: add_item
INSERT INTO items (id, blob, label) VALUES (%(id)s, %(blob)s, %(label)s);

-- name: item
SELECT id, blob, label FROM items WHERE id = %(id)s;

-- name: items
SELECT id FROM items ORDER BY id;

-- name: echo
SELECT %(value)s::bytea AS blob, %(n)s::int AS n, 'a%%b' AS literal;

-- name: table_a_rows
SELECT count(*) AS n FROM table_a;
"""
TEST_QUERIES = {**queries(), **parse_queries(TEST_SQL)}

MIGRATION_A = "CREATE TABLE table_a (id serial PRIMARY KEY);\nSELECT pg_sleep(0.2);\n"
MIGRATION_B = (
    "-- 100%: literal percent signs are fine in a migration\nALTER TABLE table_a ADD note text;\n"
)


@pytest.fixture
def tdb(db_url: str) -> Iterator[Database]:
    with Database(db_url, timeout=5, queries=TEST_QUERIES) as database:
        database.execute("create_items")
        yield database


@pytest.fixture
def migrations_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "migrations"
    directory.mkdir()
    (directory / "0001_table_a.sql").write_text(MIGRATION_A)
    (directory / "0002_note.sql").write_text(MIGRATION_B)
    return directory


def test_named_query_round_trip(tdb: Database) -> None:
    row = tdb.fetch_one("server_now")
    assert row is not None and isinstance(row["now"], datetime.datetime)
    assert tdb.execute("add_item", id=1, blob=b"\x00\xffweights", label="x") == 1
    item = tdb.fetch_one("item", id=1)
    assert item == {"id": 1, "blob": b"\x00\xffweights", "label": "x"}
    assert type(item["blob"]) is bytes
    assert tdb.fetch_one("item", id=2) is None
    echo = tdb.fetch_all("echo", value=bytes(range(256)), n=7)
    assert echo == [{"blob": bytes(range(256)), "n": 7, "literal": "a%b"}]


def test_unknown_query_and_bad_parameters(tdb: Database) -> None:
    with pytest.raises(UnknownQueryError, match="'no_such_query'"):
        tdb.fetch_one("no_such_query")
    with pytest.raises(DatabaseError, match="id"):
        tdb.fetch_one("item")  # missing parameter
    with pytest.raises(DatabaseError) as excinfo:
        tdb.execute("create_items")  # already exists
    assert excinfo.value.sqlstate == "42P07"
    assert "\n" not in str(excinfo.value)
    assert not isinstance(excinfo.value, DatabaseUnavailable)


def test_transaction_commits_or_rolls_back(tdb: Database) -> None:
    with tdb.transaction() as tx:
        tx.execute("add_item", id=1, blob=None, label="kept")
        assert tx.fetch_all("items") == [{"id": 1}]
    with pytest.raises(RuntimeError), tdb.transaction() as tx:
        tx.execute("add_item", id=2, blob=None, label="lost")
        raise RuntimeError("boom")
    with pytest.raises(DatabaseError) as excinfo, tdb.transaction() as tx:
        tx.execute("add_item", id=3, blob=None, label="lost too")
        tx.execute("add_item", id=1, blob=None, label="duplicate")
    assert excinfo.value.sqlstate == "23505"
    assert tdb.fetch_all("items") == [{"id": 1}]


def test_unavailable_then_recovers_after_restart(pg_dir: Path) -> None:
    server = EmbeddedPostgres(pg_dir, durable=False)
    try:
        info = server.start()
        with Database(info.url(), timeout=1) as db:
            assert db.fetch_one("server_now") is not None
            server.stop()
            with pytest.raises(DatabaseUnavailable):
                db.fetch_one("server_now")
            server.start()
            retries: list[int] = []
            row = retrying(
                lambda: db.fetch_one("server_now"),
                on_retry=lambda attempt, delay, exc: retries.append(attempt),
                max_wait=30,
            )
            assert row is not None
            # The pool hands out working connections again, not ones broken by the restart.
            for _ in range(8):
                assert db.fetch_one("server_now") is not None
    finally:
        server.stop()


def test_unreachable_server_is_unavailable() -> None:
    url = f"postgresql://ganfriends:x@127.0.0.1:{free_port()}/ganfriends"
    with Database(url, timeout=0.5) as db, pytest.raises(DatabaseUnavailable):
        db.fetch_one("server_now")


def test_template_databases_are_migrated(db: Database) -> None:
    assert current_version(db) == len(discover())
    assert pending(db) == []


def test_migrate_once_idempotent_and_reset(empty_db_url: str, migrations_dir: Path) -> None:
    with Database(empty_db_url, timeout=5, queries=TEST_QUERIES) as db:
        assert current_version(db) == 0
        assert [m.name for m in pending(db, migrations_dir)] == ["0001_table_a", "0002_note"]
        assert migrate(db, migrations_dir) == ["0001_table_a", "0002_note"]
        assert migrate(db, migrations_dir) == []
        assert current_version(db) == 2
        assert db.fetch_one("table_a_rows") == {"n": 0}

        reset(db)
        assert current_version(db) == 0
        with pytest.raises(DatabaseError) as excinfo:
            db.fetch_one("table_a_rows")
        assert excinfo.value.sqlstate == "42P01"  # undefined table: the schema is gone
        assert migrate(db, migrations_dir) == ["0001_table_a", "0002_note"]


def test_concurrent_migrate_applies_each_file_once(empty_db_url: str, migrations_dir: Path) -> None:
    results: list[list[str]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def run() -> None:
        try:
            # One Database per thread, like separate processes starting at once.
            with Database(empty_db_url, timeout=10) as db:
                barrier.wait()
                results.append(migrate(db, migrations_dir))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    applied = sorted(name for result in results for name in result)
    assert applied == ["0001_table_a", "0002_note"]
    with Database(empty_db_url, timeout=5) as db:
        assert current_version(db) == 2
