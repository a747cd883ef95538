"""The coordinator's side of the queue: the uploads of a version, rejected, dropped or counted.

Also what the coordinator's watchdog ends (students' stuck sessions) and the screening history
it reads back (the reference norms of the latest updates).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ganfriends.classroom.queue.claims import unit_of
from ganfriends.db import Database
from ganfriends.db.rows import typed_row
from ganfriends.rules import Unit


@dataclass(frozen=True)
class Upload:
    """A worker's accepted upload, not yet validated by the coordinator."""

    unit_id: int
    unit: Unit
    worker_id: int
    images: int
    payload: bytes
    device_state: bytes | None
    arrived: datetime | None = None  # when it was stored: copies of a unit count in this order
    # Who is behind the worker (migration 0011): a student's role name, or a key of its own for
    # each of the instructor's workers. Screening gives each student one vote.
    student: str = ""

    @property
    def key(self) -> tuple[int, int]:
        """(unit_id, worker_id): a copy's identity (one per worker and unit)."""
        return (self.unit_id, self.worker_id)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Upload:
        """Parse a ``fetch_results`` row."""
        return typed_row(cls, row, unit=unit_of(row), arrived=row.get("created_at"))


@dataclass(frozen=True)
class UnitCounts:
    """Units of one version: how many have a result, out of how many."""

    done: int
    total: int


def count_units(db: Database, run_id: int, version: int) -> UnitCounts:
    """How far a version's units are."""
    row = db.fetch_one("count_units", run_id=run_id, version=version)
    assert row is not None
    return typed_row(UnitCounts, row)


def uploads(
    db: Database, run_id: int, version: int, seen: Collection[tuple[int, int]] = ()
) -> list[Upload]:
    """A version's uploads but those ``seen`` ((unit_id, worker_id) pairs), in unit order, the
    copies of a unit in order of arrival."""
    rows = db.fetch_all(
        "fetch_results",
        run_id=run_id,
        version=version,
        seen_units=[unit for unit, _ in seen],
        seen_workers=[worker for _, worker in seen],
    )
    return [Upload.from_row(r) for r in rows]


def upload_keys(db: Database, run_id: int, version: int) -> set[tuple[int, int]]:
    """(unit_id, worker_id) of every copy of the version stored now."""
    rows = db.fetch_all("result_keys", run_id=run_id, version=version)
    return {(int(r["unit_id"]), int(r["worker_id"])) for r in rows}


def reject(db: Database, run_id: int, upload: Upload, reason: str, *, blame: bool = True) -> None:
    """Drop an invalid copy and record it against its worker (``blame``: counted towards its
    student's quarantine); its unit is requeued unless another copy is stored or still being
    computed (idle workers are woken for it)."""
    db.execute(
        "reject_result",
        unit_id=upload.unit_id,
        worker_id=upload.worker_id,
        reason=reason,
        blame=blame,
    )
    db.execute("notify_work", run_id=run_id)


@dataclass(frozen=True)
class EndedSession:
    """A student's session the coordinator's watchdog ended."""

    pid: int
    role: str
    seconds: float


def end_stuck_student_sessions(db: Database, seconds: float) -> list[EndedSession]:
    """End students' sessions whose transaction is older than ``seconds``; those it ended."""
    rows = db.fetch_all("end_stuck_student_sessions", seconds=seconds)
    return [typed_row(EndedSession, r) for r in rows if r["ended"]]


def drop_copy(db: Database, upload: Upload) -> None:
    """Delete a valid copy that another copy of its unit stands for (neither used nor credited)."""
    db.execute("drop_copy", unit_id=upload.unit_id, worker_id=upload.worker_id)


def record_mismatch(db: Database, run_id: int, version: int, upload: Upload, reason: str) -> None:
    """Note against ``upload``'s worker that its copy disagreed with another worker's (shown with
    the rejections; it does not count towards the claim limit: one of the two was honest)."""
    db.execute(
        "record_mismatch",
        run_id=run_id,
        worker_id=upload.worker_id,
        version=version,
        unit_index=upload.unit.index,
        reason=reason,
    )


def unit_rejections(db: Database, run_id: int, version: int, unit_index: int) -> tuple[int, int]:
    """How many copies of a unit were rejected, and by how many distinct students."""
    row = db.fetch_one("unit_rejections", run_id=run_id, version=version, unit_index=unit_index)
    assert row is not None
    return int(row["rejected"]), int(row["students"])


def recent_norms(db: Database, run_id: int, version: int, limit: int) -> list[dict[str, float]]:
    """The screening references of the latest ``limit`` updates up to ``version``, oldest
    first."""
    rows = db.fetch_all("recent_norms", run_id=run_id, version=version, limit=limit)
    return [{str(k): float(v) for k, v in row["norms"].items()} for row in reversed(rows)]
