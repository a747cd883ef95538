"""Schema migrations: numbered ``sql/migrations/NNNN_name.sql`` files, applied in order, then
the functions file.

Each numbered file runs in its own transaction together with its row in ``schema_migrations``,
under a lock on that table (``migrations_lock``), so concurrent ``migrate`` calls (a class
starting at once) apply every file exactly once. A file cannot hold statements that refuse to run
in a transaction (CREATE INDEX CONCURRENTLY, ALTER TYPE ... ADD VALUE before PG 12).

Numbered files change tables. The functions (and the view that calls them) live in one
repeatable file beside the migrations folder, ``sql/functions.sql``, every statement a CREATE OR
REPLACE: it runs after the numbered files, under the same lock, whenever its text differs from
the one last applied (``schema_functions`` keeps its digest). A database at any version thus ends
with the current definitions, and a change to a function is an edit of that file, not a new
migration re-creating it whole.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ganfriends.db.connection import Database, Tx
from ganfriends.db.errors import DatabaseError, MigrationError

UNIQUE_VIOLATION = "23505"
LOCK_NOT_AVAILABLE = "55P03"

MIGRATIONS_DIR = Path(__file__).parent / "sql" / "migrations"
FUNCTIONS_NAME = "functions"  # {directory}/../functions.sql; absent for a test's own folder
_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    """One migration file."""

    version: int
    name: str  # file name without ".sql", e.g. "0001_initial"
    path: Path

    def script(self) -> str:
        """The file's SQL."""
        return self.path.read_text(encoding="utf-8")


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migration files in version order; versions must be unique and start at 1 without gaps."""
    migrations: list[Migration] = []
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise MigrationError(f"{path.name}: migration files are named NNNN_lower_snake.sql")
        migrations.append(Migration(int(match.group(1)), path.stem, path))
    for expected, migration in enumerate(migrations, start=1):
        if migration.version != expected:
            raise MigrationError(
                f"{migration.path.name}: expected version {expected:04d} (no gaps or duplicates)"
            )
    return migrations


def _applied(db: Database) -> set[int]:
    row = db.fetch_one("migrations_table_exists")
    if row is None or not row["present"]:
        return set()
    return {int(row["version"]) for row in db.fetch_all("applied_migrations")}


def current_version(db: Database) -> int:
    """The highest applied migration version, 0 for an empty database."""
    return max(_applied(db), default=0)


def pending(db: Database, directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Migrations not yet applied, in order."""
    applied = _applied(db)
    return [m for m in discover(directory) if m.version not in applied]


def functions_file(directory: Path = MIGRATIONS_DIR) -> Path | None:
    """The repeatable functions file that goes with the migrations in ``directory``, if any."""
    path = directory.parent / f"{FUNCTIONS_NAME}.sql"
    return path if path.is_file() else None


def migrate(db: Database, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply pending migrations in order, then the functions file if it changed; return the names
    applied by this call (``functions`` for the functions file)."""
    migrations = discover(directory)
    _bootstrap(db)
    applied_now: list[str] = []
    for migration in migrations:
        if migration.version in _applied(db):
            continue
        with migration_lock(db) as tx:
            # Re-check under the lock: another process may have applied it while we waited.
            done = {row["version"] for row in tx.fetch_all("applied_migrations")}
            if migration.version in done:
                continue
            tx.run_script(migration.script())
            tx.execute("record_migration", version=migration.version, name=migration.name)
        applied_now.append(migration.name)
    functions = functions_file(directory)
    if functions is not None and _apply_functions(db, functions.read_text(encoding="utf-8")):
        applied_now.append(FUNCTIONS_NAME)
    return applied_now


def _apply_functions(db: Database, script: str) -> bool:
    """Run the functions file unless this text was the last applied; whether it ran."""
    digest = hashlib.sha256(script.encode()).hexdigest()
    if _functions_digest(db) == digest:
        return False
    with migration_lock(db) as tx:
        row = tx.fetch_one("functions_digest")  # again under the lock: another may have run it
        if row is not None and row["digest"] == digest:
            return False
        tx.run_script(script)
        tx.execute("record_functions", digest=digest)
    return True


def _functions_digest(db: Database) -> str | None:
    row = db.fetch_one("functions_digest")
    return None if row is None else str(row["digest"])


def reset(db: Database) -> None:
    """Drop everything ganfriends owns (schema ``ganfriends``); ``migrate`` recreates it."""
    _bootstrap(db)
    with migration_lock(db) as tx:
        tx.execute("drop_schema")


def _bootstrap(db: Database) -> None:
    """The schema and its migrations table, created if missing. Two processes creating them at
    once may collide on the catalog's unique index (CREATE ... IF NOT EXISTS is not atomic):
    the loser finds them there on its second try."""
    for attempt in range(3):
        try:
            with db.transaction() as tx:
                tx.execute("create_schema")
                tx.execute("create_migrations_table")
                tx.execute("create_functions_table")
            return
        except DatabaseError as exc:
            if exc.sqlstate != UNIQUE_VIOLATION or attempt == 2:
                raise


@contextmanager
def migration_lock(db: Database) -> Iterator[Tx]:
    """A transaction holding the migrations lock; a one-line error when a session holds a table
    so long that the lock cannot be had."""
    try:
        with db.transaction() as tx:
            tx.execute("migrations_lock")
            yield tx
    except DatabaseError as exc:
        if exc.sqlstate != LOCK_NOT_AVAILABLE:
            raise
        raise MigrationError(
            "another session held the class's tables for 30 s: stop the coordinator and the "
            "workers (`ganfriends students list` shows who is connected), then run it again"
        ) from exc
