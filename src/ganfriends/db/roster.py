"""A whole class at once: ``students add --roster FILE`` and ``students revoke --all``.

A roster is one name per line, or a CSV whose header has a ``name`` column; blank lines and
lines starting with ``#`` are left out. Every name is checked as ``students add NAME`` checks
it, and every problem is reported before anything is created. The missing students are then
created in one transaction (:func:`add_roster`): a crash or a refusal creates none, and a
second run at the same time waits for the first (:func:`ganfriends.db.students.open_class`)
and finds its students there. Students already in the class are skipped, their passwords
unchanged.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from ganfriends.db.admin import connect
from ganfriends.db.sql import admin_queries
from ganfriends.db.students import (
    StudentError,
    check_connections,
    check_name,
    class_members,
    create_student,
    new_password,
    open_class,
    reach_students,
    refused,
    revoke,
)

NAME_COLUMN = "name"


@dataclass(frozen=True)
class RosterResult:
    """What :func:`add_roster` did: the new students with their passwords, and those skipped."""

    created: dict[str, str]  # name -> password, in roster order
    existing: list[str]  # already students of the class: left as they were
    revoked: list[str] = field(default_factory=list)  # of ``existing``: may not log in


@dataclass(frozen=True)
class Revoked:
    """One student ended by :func:`revoke_all`."""

    name: str
    released: int  # their units given back to the queue
    problem: str | None = None  # what could not be done (their sessions could not be ended)


def read_roster(path: Path) -> list[str]:
    """The student names of the roster file ``path``, in order; every problem of the file in
    one :class:`StudentError` (a line each), so that one run fixes them all."""
    try:
        text = path.read_text(encoding="utf-8-sig")  # a spreadsheet's CSV may start with a BOM
    except (OSError, UnicodeDecodeError) as exc:
        raise StudentError(f"cannot read the roster {path}: {exc}") from exc
    return parse_roster(text, source=str(path))


def parse_roster(text: str, *, source: str = "roster") -> list[str]:
    """The names of a roster's ``text`` (see the module docstring); raises as
    :func:`read_roster`."""
    lines = [
        (number, line)
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    entries, problems = _entries(lines)
    names: list[str] = []
    first_seen: dict[str, int] = {}
    for number, name in entries:
        if name in first_seen:
            problems.append(f"line {number}: {name!r} is already on line {first_seen[name]}")
            continue
        try:
            names.append(check_name(name))
            first_seen[name] = number
        except StudentError as exc:
            problems.append(f"line {number}: {exc}")
    if problems:
        listed = "\n  ".join(problems)
        raise StudentError(f"{source}: nothing created; {len(problems)} problem(s):\n  {listed}")
    if not names:
        raise StudentError(f"{source}: no student names in it")
    return names


def _entries(lines: list[tuple[int, str]]) -> tuple[list[tuple[int, str]], list[str]]:
    """(line number, name) of each roster line, and the problems of its form."""
    if not lines:
        return [], []
    header = _cells(lines[0][1])
    columns = [cell.strip().lower() for cell in header]
    if NAME_COLUMN not in columns:
        if len(header) > 1:
            return [], [
                f"line {lines[0][0]}: a CSV roster needs a {NAME_COLUMN!r} column in its first "
                "line (or give one name per line)"
            ]
        return [(number, line.strip()) for number, line in lines], []
    index = columns.index(NAME_COLUMN)
    entries, problems = [], []
    for number, line in lines[1:]:
        cells = _cells(line)
        if index >= len(cells) or not cells[index].strip():
            problems.append(f"line {number}: no {NAME_COLUMN!r} on this row")
        else:
            entries.append((number, cells[index].strip()))
    return entries, problems


def _cells(line: str) -> list[str]:
    return next(csv.reader(io.StringIO(line)), [])


def add_roster(
    admin_url: str,
    names: list[str],
    *,
    max_connections: int,
    lock_databases: tuple[str, ...] = (),
    keep: Callable[[Mapping[str, str]], None] = lambda created: None,
) -> RosterResult:
    """Create every student of ``names`` not yet in the class, in one transaction.

    ``keep(created)`` is called with the new students' passwords before the transaction
    commits (to write their URLs down): if it raises, no student is created, and once it has
    returned no password can be lost. A name held by a role that is not a student of this
    class stops the whole roster before anything is created.
    """
    check_connections(max_connections)
    with connect(admin_url) as conn:
        try:
            with conn.transaction():
                group = open_class(conn, lock_databases)
                members = class_members(conn)
                others = [
                    name for name in names if name not in members
                    and conn.execute(admin_queries()["role_exists"], {"role": name}).fetchone()
                ]  # fmt: skip
                if others:
                    raise StudentError(
                        "nothing created: these names belong to roles that are not students "
                        f"of this class: {', '.join(others)}; choose other names"
                    )
                created = {name: new_password() for name in names if name not in members}
                for name, password in created.items():
                    create_student(
                        conn, name, password, group=group, max_connections=max_connections
                    )
                reach_students(conn)
                keep(created)
        except psycopg.Error as exc:
            raise refused(exc) from exc
    existing = [name for name in names if name in members]
    revoked = [name for name in existing if not members[name]]
    return RosterResult(created=created, existing=existing, revoked=revoked)


def revoke_all(admin_url: str) -> list[Revoked]:
    """Revoke every student of the class (the class is over): no new login, their sessions
    ended, their units given back. Students whose sessions could not be ended are revoked all
    the same and say so in :attr:`Revoked.problem`."""
    done: list[Revoked] = []
    with connect(admin_url) as conn:
        try:
            for name in class_members(conn):
                try:
                    done.append(Revoked(name, revoke(conn, name)))
                except StudentError as exc:
                    done.append(Revoked(name, 0, str(exc)))
        except psycopg.Error as exc:
            raise refused(exc) from exc
    return done
