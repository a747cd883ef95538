"""Named queries: every SQL statement lives in a ``.sql`` file, Python only refers to names.

A query file is a sequence of blocks, each introduced by a ``-- name: <identifier>`` line::

    -- name: server_now
    -- Comments below the name line document the query and are sent with it.
    SELECT now() AS now;

Comment lines just above the next ``-- name:`` line belong to that next block's documentation,
so they are trimmed from the end of the previous query. Only comments may precede the first
block. Parameters are named, psycopg style: ``%(run_id)s``; a literal ``%`` is written ``%%``.
A bytea[] parameter is sent binary, ``%(blobs)b``: psycopg would send a list as hex text.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from ganfriends.db.errors import QueryFileError

SQL_DIR = Path(__file__).parent
QUERIES_FILE = SQL_DIR / "queries.sql"
ADMIN_FILE = SQL_DIR / "admin.sql"

_NAME_LINE = re.compile(r"^--\s*name:(.*)$")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _is_blank_or_comment(line: str) -> bool:
    stripped = line.strip()
    return not stripped or stripped.startswith("--")


def parse_queries(text: str, *, source: str = "<string>") -> dict[str, str]:
    """Parse named-query text into ``{name: sql}``; raise :class:`QueryFileError` if malformed."""
    queries: dict[str, str] = {}
    first_line: dict[str, int] = {}
    name: str | None = None
    body: list[str] = []

    def close_block(end_line: int) -> None:
        if name is None:
            if not all(_is_blank_or_comment(line) for line in body):
                raise QueryFileError(f"{source}: SQL before the first '-- name:' line")
            return
        lines = list(body)
        while lines and _is_blank_or_comment(lines[-1]):
            lines.pop()
        if all(_is_blank_or_comment(line) for line in lines):
            raise QueryFileError(
                f"{source}:{first_line[name]}: query {name!r} is empty (ends at line {end_line})"
            )
        queries[name] = "\n".join(lines).strip()

    for number, line in enumerate(text.splitlines(), start=1):
        match = _NAME_LINE.match(line.strip())
        if match is None:
            body.append(line)
            continue
        close_block(number - 1)
        candidate = match.group(1).strip()
        if not _IDENTIFIER.match(candidate):
            raise QueryFileError(f"{source}:{number}: invalid query name {candidate!r}")
        if candidate in first_line:
            raise QueryFileError(
                f"{source}:{number}: duplicate query name {candidate!r} "
                f"(first defined at line {first_line[candidate]})"
            )
        name, body = candidate, []
        first_line[name] = number
    close_block(len(text.splitlines()))
    return queries


def load_queries(path: Path) -> dict[str, str]:
    """Read and parse one named-query file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise QueryFileError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return parse_queries(text, source=str(path))


@functools.cache
def queries() -> dict[str, str]:
    """The application's named queries (``queries.sql``), parsed once per process."""
    return load_queries(QUERIES_FILE)


@functools.cache
def admin_queries() -> dict[str, str]:
    """Superuser/bootstrap statements (``admin.sql``), composed with psycopg.sql identifiers."""
    return load_queries(ADMIN_FILE)


def __getattr__(name: str) -> dict[str, str]:
    # ``QUERIES`` is loaded on first access, not at import: importing ganfriends.db must not
    # touch the filesystem (and a broken file should fail where the queries are used).
    if name == "QUERIES":
        return queries()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
