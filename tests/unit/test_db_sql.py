"""The named-query parser and the migration file discovery."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import ganfriends.db.sql as sql_module
from ganfriends.db.errors import MigrationError, QueryFileError
from ganfriends.db.migrations import discover
from ganfriends.db.sql import admin_queries, load_queries, parse_queries, queries


def test_blocks_are_split_on_name_lines() -> None:
    text = """\
-- File header: only comments before the first block.

-- name: first
-- Documentation of the first query stays with it.
SELECT 1 AS one;

-- This comment documents the second query and is not part of the first.
--name:second
SELECT %(x)s AS x
  FROM generate_series(1, 2);
"""
    parsed = parse_queries(text)
    assert list(parsed) == ["first", "second"]
    assert parsed["first"] == (
        "-- Documentation of the first query stays with it.\nSELECT 1 AS one;"
    )
    assert parsed["second"] == "SELECT %(x)s AS x\n  FROM generate_series(1, 2);"


def test_duplicate_names_are_rejected() -> None:
    text = "-- name: a\nSELECT 1;\n-- name: b\nSELECT 2;\n-- name: a\nSELECT 3;\n"
    with pytest.raises(QueryFileError, match=r"duplicate query name 'a' .*line 1"):
        parse_queries(text)


@pytest.mark.parametrize(
    "text",
    [
        "-- name: empty\n\n-- name: full\nSELECT 1;\n",
        "-- name: full\nSELECT 1;\n-- name: only_comments\n-- nothing here\n",
        "-- name: last\n",
    ],
)
def test_empty_queries_are_rejected(text: str) -> None:
    with pytest.raises(QueryFileError, match="is empty"):
        parse_queries(text)


@pytest.mark.parametrize("line", ["-- name:", "-- name: two words", "-- name: 1abc"])
def test_invalid_names_are_rejected(line: str) -> None:
    with pytest.raises(QueryFileError, match="invalid query name"):
        parse_queries(f"{line}\nSELECT 1;\n")


def test_sql_before_the_first_name_is_rejected() -> None:
    with pytest.raises(QueryFileError, match="before the first"):
        parse_queries("SELECT 0;\n-- name: a\nSELECT 1;\n")


def test_errors_name_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.sql"
    path.write_text("-- name: a\nSELECT 1;\n-- name: a\nSELECT 2;\n")
    with pytest.raises(QueryFileError, match=rf"{path}:3: duplicate"):
        load_queries(path)
    with pytest.raises(QueryFileError, match="cannot read"):
        load_queries(tmp_path / "missing.sql")


def test_shipped_query_files_parse() -> None:
    for name in ("server_now", "migrations_lock", "create_migrations_table", "drop_schema"):
        assert name in queries()
    assert sql_module.QUERIES is queries()  # lazily loaded, then cached
    assert "create_database_from_template" in admin_queries()
    with pytest.raises(AttributeError):
        _ = sql_module.NO_SUCH_THING


def test_shipped_migrations_are_numbered_from_one() -> None:
    migrations = discover()
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    assert migrations[0].name == "0001_initial"


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["0001_a.sql", "0003_c.sql"], "expected version 0002"),
        (["0001_a.sql", "0001_b.sql"], "expected version 0002"),
        (["0002_a.sql"], "expected version 0001"),
        (["0001_Bad-Name.sql"], "NNNN_lower_snake"),
        (["1_a.sql"], "NNNN_lower_snake"),
    ],
)
def test_inconsistent_migration_files_are_rejected(
    tmp_path: Path, names: list[str], message: str
) -> None:
    for name in names:
        (tmp_path / name).write_text("SELECT 1;\n")
    with pytest.raises(MigrationError, match=message):
        discover(tmp_path)


def test_every_bytea_array_parameter_is_sent_binary() -> None:
    # psycopg sends a list as text unless the placeholder says %(x)b: a bytea[] of blobs would
    # cross the wire as hex, twice its size, and cost the server a parse (5x slower, measured).
    text_arrays = [
        (name, param)
        for name, sql in queries().items()
        for param in re.findall(r"%\((\w+)\)s::bytea\[\]", sql)
    ]
    assert text_arrays == []
    assert any("b::bytea[]" in sql for sql in queries().values())  # the pattern still applies
