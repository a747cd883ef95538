"""typed_row: a query's row into a dataclass by its declared field types."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from ganfriends.db.rows import typed_row


@dataclass(frozen=True)
class Line:
    count: int
    share: float
    name: str
    flagged: bool
    blob: bytes | None
    seen: datetime
    note: str = "-"


SEEN = datetime(2026, 1, 1, tzinfo=timezone.utc)
ROW = {
    "count": Decimal(3),
    "share": Decimal("0.5"),
    "name": "ada",
    "flagged": 1,
    "blob": memoryview(b"xy"),
    "seen": SEEN,
    "extra": "ignored",
}


def test_columns_are_converted_to_the_declared_types() -> None:
    line = typed_row(Line, ROW)
    assert line == Line(3, 0.5, "ada", True, b"xy", SEEN)
    assert type(line.count) is int and type(line.share) is float and type(line.blob) is bytes


def test_null_stays_none_for_an_optional_field_and_given_values_win() -> None:
    line = typed_row(Line, ROW | {"blob": None}, name="given")
    assert (line.blob, line.name) == (None, "given")


def test_a_missing_column_needs_a_default() -> None:
    assert typed_row(Line, ROW).note == "-"
    with pytest.raises(KeyError, match="count"):
        typed_row(Line, {k: v for k, v in ROW.items() if k != "count"})
