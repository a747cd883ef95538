"""schema.sql (with functions.sql) and the migrations describe one schema; an old database
upgrades to it; the functions file runs again when it changes.

Each check compares two databases' catalogs (``catalog.sql``: columns with their types and
defaults, constraints, indexes, views', functions' and triggers' definitions, sequences and
grants) and fails listing what only one of them has.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from ganfriends.db import Database
from ganfriends.db.migrations import (
    FUNCTIONS_NAME,
    MIGRATIONS_DIR,
    current_version,
    discover,
    functions_file,
    migrate,
    reset,
)
from ganfriends.db.schema_dump import SCHEMA_FILE
from ganfriends.db.sql import load_queries

CATALOG = load_queries(Path(__file__).with_name("catalog.sql"))
OLD_VERSION = 6  # before the worker functions (0007) and every later re-creation of them
FUNCTION_V1 = "CREATE OR REPLACE FUNCTION answer() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;\n"
FUNCTION_V2 = FUNCTION_V1.replace("SELECT 1", "SELECT 2")


def catalog(url: str) -> dict[str, set[tuple[Any, ...]]]:
    """Every fact of ``catalog.sql`` about the database at ``url``, per query."""
    with psycopg.connect(url, row_factory=dict_row) as conn:
        return {
            name: {_hashable(row.values()) for row in conn.execute(query).fetchall()}
            for name, query in CATALOG.items()
        }


def _hashable(values: Any) -> tuple[Any, ...]:
    """A row as a set member (reloptions come back as lists)."""
    return tuple(tuple(v) if isinstance(v, list) else v for v in values)


def differences(left: str, right: str, left_name: str, right_name: str) -> list[str]:
    """Lines naming every fact that only one of the two databases has."""
    ours, theirs = catalog(left), catalog(right)
    lines: list[str] = []
    for name in CATALOG:
        lines += [
            f"{name}: only in {left_name}: {fact}"
            for fact in sorted(ours[name] - theirs[name], key=str)
        ]
        lines += [
            f"{name}: only in {right_name}: {fact}"
            for fact in sorted(theirs[name] - ours[name], key=str)
        ]
    return lines


def test_the_catalog_sees_the_schema(db_url: str) -> None:
    facts = catalog(db_url)
    assert ("runs", "id") in {fact[:2] for fact in facts["columns"]}
    assert "worker_submit_result" in {fact[0] for fact in facts["functions"]}
    assert "student_standing" in {fact[0] for fact in facts["views"]}


def test_schema_sql_builds_what_the_migrations_build(db_url: str, empty_db_url: str) -> None:
    functions = functions_file()
    assert functions is not None
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        conn.execute(SCHEMA_FILE.read_text(encoding="utf-8").encode())
        conn.execute("SET search_path = ganfriends")  # as migrate's sessions run it
        conn.execute(functions.read_text(encoding="utf-8").encode())

    found = differences(empty_db_url, db_url, "schema.sql + functions.sql", "the migrations")

    assert not found, (
        "schema.sql is not what the migrations build: regenerate it with "
        "`python -m ganfriends.db.schema_dump`\n" + "\n".join(found)
    )


def test_a_database_at_an_old_version_upgrades_to_the_fresh_schema(
    db_url: str, empty_db_url: str, tmp_path: Path
) -> None:
    old = tmp_path / "migrations"
    old.mkdir()
    for migration in discover()[:OLD_VERSION]:
        shutil.copy(migration.path, old / migration.path.name)
    with Database(empty_db_url) as db:
        migrate(db, old)
        assert current_version(db) == OLD_VERSION
        migrate(db, MIGRATIONS_DIR)
        assert current_version(db) == len(discover())

    found = differences(empty_db_url, db_url, "the upgraded database", "a fresh one")

    assert not found, "\n".join(found)


def test_the_functions_file_runs_after_the_migrations_and_again_when_it_changes(
    empty_db_url: str, tmp_path: Path
) -> None:
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    (migrations / "0001_table.sql").write_text("CREATE TABLE t (id int);\n")
    functions = tmp_path / f"{FUNCTIONS_NAME}.sql"
    functions.write_text(FUNCTION_V1)
    with Database(empty_db_url) as db:
        assert migrate(db, migrations) == ["0001_table", FUNCTIONS_NAME]
        assert migrate(db, migrations) == []  # the same text is not run again
        functions.write_text(FUNCTION_V2)
        assert migrate(db, migrations) == [FUNCTIONS_NAME]
        with psycopg.connect(empty_db_url) as conn:
            assert conn.execute("SELECT ganfriends.answer()").fetchone() == (2,)
        reset(db)
        assert migrate(db, migrations) == ["0001_table", FUNCTIONS_NAME]
