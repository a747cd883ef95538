"""The named queries and the code that runs them name the same set: no dead SQL, no typo."""

from __future__ import annotations

import re
from pathlib import Path

from ganfriends.db.sql import queries

ROOT = Path(__file__).resolve().parents[2]
# A query is run by name as the first argument of these calls (and of session_lock's two).
CALL = re.compile(r"\.(?:fetch_one|fetch_all|execute)\(\s*\"(\w+)\"")


def python_text(*folders: str) -> str:
    return "\n".join(
        path.read_text(encoding="utf-8")
        for folder in folders
        for path in sorted((ROOT / folder).rglob("*.py"))
    )


def test_every_named_query_is_run_somewhere() -> None:
    text = python_text("src", "tests", "benchmarks")
    dead = [name for name in queries() if f'"{name}"' not in text]
    assert dead == []


def test_every_query_name_the_package_runs_exists() -> None:
    called = set(CALL.findall(python_text("src")))
    assert called  # the pattern still matches how the package runs queries
    assert sorted(called - set(queries())) == []
