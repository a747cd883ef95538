"""The checks' records and the report that prints them: one line per check.

A line reads ``ok   <check>: <what was found>``, ``warn <check>: ...``, ``FAIL <check>: <what to
do>`` or ``skip <check>: <why not checked>``; plain text, so that a student can paste it to the
instructor and the docs can quote it. The exit status is 1 when any check failed, else 0.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import psycopg

from ganfriends.db.errors import translate_error
from ganfriends.errors import GanError

T = TypeVar("T")


class Status(enum.Enum):
    """How a check came out."""

    OK = "ok"
    WARN = "warn"  # works, but worth knowing (slow, unpinned, nearly full)
    FAIL = "FAIL"  # a worker (or the class) would not work: the line says what to do
    SKIP = "skip"  # not checked: an earlier check it needs failed


@dataclass(frozen=True)
class Result:
    """One check's outcome."""

    check: str
    status: Status
    detail: str

    def line(self) -> str:
        """The printed line, e.g. ``ok   latency: 0.4 ms (median of 5 round trips)``."""
        return f"{self.status.value:<4} {self.check}: {self.detail}"


def ok(check: str, detail: str) -> Result:
    """A passed check and what it found."""
    return Result(check, Status.OK, detail)


def warn(check: str, detail: str) -> Result:
    """A passed check with something worth knowing."""
    return Result(check, Status.WARN, detail)


def fail(check: str, detail: str) -> Result:
    """A failed check and what to do about it."""
    return Result(check, Status.FAIL, detail)


def skip(check: str, detail: str) -> Result:
    """A check not made, and why."""
    return Result(check, Status.SKIP, detail)


@dataclass(frozen=True)
class Found(Generic[T]):
    """A check's result and what it found for the checks after it (None when it failed)."""

    result: Result
    value: T | None = None


class Report:
    """The results so far, each handed to ``emit`` as it comes (a unit may take seconds: the
    lines before it are already on the screen)."""

    def __init__(self, emit: Callable[[Result], None]) -> None:
        self._emit = emit
        self.results: list[Result] = []

    def add(self, result: Result) -> Result:
        """Record and show one result."""
        self.results.append(result)
        self._emit(result)
        return result

    def take(self, found: Found[T]) -> T | None:
        """Record ``found``'s result; its value for the next checks."""
        self.add(found.result)
        return found.value

    def skip(self, checks: tuple[str, ...], why: str) -> None:
        """Mark ``checks`` as not made, because of ``why``."""
        for check in checks:
            self.add(skip(check, why))

    @property
    def exit_status(self) -> int:
        """1 when a check failed, else 0."""
        return 1 if any(r.status is Status.FAIL for r in self.results) else 0


def attempt(check: str, fn: Callable[..., Found[T]], *args: Any) -> Found[T]:
    """``fn(*args)``, with an error a user can cause turned into the check's FAIL line."""
    try:
        return fn(*args)
    except GanError as exc:
        return Found(fail(check, str(exc)))
    except psycopg.Error as exc:
        return Found(fail(check, str(translate_error(exc))))


def print_line(result: Result) -> None:
    """The command's ``emit``: the line on stdout, at once."""
    print(result.line(), flush=True)
