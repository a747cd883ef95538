"""Write ``sql/schema.sql``: what the migrations build, as one file for a reader.

    python -m ganfriends.db.schema_dump          # rewrite src/ganfriends/db/sql/schema.sql
    python -m ganfriends.db.schema_dump --stdout # print it instead

It starts a throwaway embedded server, migrates an empty database, and tidies ``pg_dump
--schema-only`` of schema ``ganfriends`` (tables, indexes, views, functions, grants) into plain
SQL: no session settings, one heading per object. The migrations stay the truth: run this after
adding one, and ``tests/integration/test_db_schema.py`` checks that the file loaded into an
empty database gives the catalog the migrations give.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from ganfriends.db import _pgctl, admin
from ganfriends.db.connection import Database
from ganfriends.db.errors import DatabaseError
from ganfriends.db.migrations import current_version, migrate
from ganfriends.db.server import EmbeddedPostgres

SCHEMA_FILE = Path(__file__).parent / "sql" / "schema.sql"
DATABASE = "ganfriends_schema"
# pg_dump's object headings ("-- Name: runs; Type: TABLE; Schema: ganfriends; Owner: -").
_HEADING = re.compile(r"^-- Name: (?P<name>.+?); Type: (?P<type>[^;]+); Schema: [^;]*;.*$")
# What loads nothing a reader needs: session settings and psql's \restrict guards.
_NOISE = re.compile(
    r"^(SET |SELECT pg_catalog\.set_config|\\(un)?restrict |-- Dumped |-- PostgreSQL)"
)
BODIES_UNCHECKED = "SET check_function_bodies = false;"
HEADER = """\
-- The schema the migrations build (version {version}), for a reader: tables, indexes, views,
-- functions and grants of schema ganfriends. Generated from the migrations by
--     python -m ganfriends.db.schema_dump
-- do not edit it by hand; the migrations (sql/migrations/) are what databases run.
-- tests/integration/test_db_schema.py loads it into an empty database and compares the
-- catalog with a migrated one's.
"""


def tidy(dump: str, version: int) -> str:
    """pg_dump's text without session settings, with one ``-- TYPE name`` heading per object."""
    lines: list[str] = []
    for line in dump.splitlines():
        heading = _HEADING.match(line)
        if line == BODIES_UNCHECKED:
            # Functions come before the tables their SQL bodies read: load them unchecked.
            lines += ["-- The functions come first: their bodies are checked when they run.", line]
        elif heading is not None:
            lines.append(f"-- {heading['type']} {heading['name']}")
        elif line == "--" or _NOISE.match(line):
            continue
        else:
            lines.append(line.rstrip())
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    return HEADER.format(version=version) + "\n" + text + "\n"


def dump(url: str) -> str:
    """The schema of the (migrated) database at ``url``, tidied."""
    with Database(url) as db:
        version = current_version(db)
    command = [
        str(_pgctl.bin_dir() / "pg_dump"),
        "--schema-only",
        "--schema=ganfriends",
        "--no-owner",
        "--no-tablespaces",
        f"--dbname={url}",
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
    if result.returncode != 0:
        raise DatabaseError(f"pg_dump failed: {result.stderr.strip()}")
    return tidy(result.stdout, version)


def generate() -> str:
    """schema.sql's text: every migration applied to an empty database on a throwaway server."""
    data_dir = Path(tempfile.mkdtemp(prefix="ganfriends-schema-"))
    server = EmbeddedPostgres(data_dir, durable=False)
    try:
        info = server.start()
        admin.create_database(info.admin_url(), DATABASE, owner=info.user)
        url = info.url(DATABASE)
        with Database(url) as db:
            migrate(db)
        return dump(url)
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """Rewrite schema.sql (or print it with ``--stdout``)."""
    parser = argparse.ArgumentParser(
        prog="python -m ganfriends.db.schema_dump", description=__doc__
    )
    parser.add_argument("--stdout", action="store_true", help="print instead of writing the file")
    args = parser.parse_args(argv)
    text = generate()
    if args.stdout:
        sys.stdout.write(text)
    else:
        SCHEMA_FILE.write_text(text, encoding="utf-8")
        print(f"wrote {SCHEMA_FILE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
