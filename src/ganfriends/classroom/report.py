"""``ganfriends report``: what each student contributed to a run, for grading.

One line per student (not per worker registration: ``workers.student`` says who is behind
each worker): units and images credited, compute seconds, first and last contribution,
rejected copies, quarantine, share of the credited images; and the run's summary (images, steps,
wall time, the latest FID when scored). Printed as a table, or as CSV or JSON; the dashboard
offers the same CSV (:func:`build_report`, :meth:`Report.to_csv`).

Only the instructor may read it: its query reads ``contributions``, which no student's role
may (migration 0015), so the database itself refuses it to a student; :func:`build_report`
turns that refusal into one line. Rows become typed objects here, at the SQL boundary; the run
itself is read as ``status`` reads it (:mod:`ganfriends.run_status`).
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ganfriends.db import Database, DatabaseError
from ganfriends.db.rows import typed_row
from ganfriends.errors import GanError
from ganfriends.run_status import RunRow, latest_run, run_by_id

INSUFFICIENT_PRIVILEGE = "42501"
CSV_COLUMNS = (
    "run_id", "student", "workers", "units", "images", "share", "compute_seconds",
    "first_contribution", "last_contribution", "rejected", "strikes", "quarantined",
)  # fmt: skip


class ReportRefused(GanError):
    """This role may not read the report (a student's)."""


@dataclass(frozen=True)
class StudentLine:
    """One student's contribution to the run (a ``report_students`` row)."""

    student: str  # a class role, or one of the instructor's own workers ("owner/ID")
    workers: int  # registrations (a restarted worker registers again)
    units: int  # combined copies credited
    images: int
    compute_seconds: float  # as their workers reported it for the credited copies
    first_contribution: datetime | None  # when the first / last credited copy was combined
    last_contribution: datetime | None
    rejected: int  # copies refused by validation
    strikes: int  # counted towards quarantine since their last pardon
    quarantined: bool
    share: float  # of the images credited to everyone (an alternating step credits its images
    # to its D units and again to its G units: a share of the run's images would reach 200%)

    @classmethod
    def from_row(cls, row: dict[str, Any], credited: int) -> StudentLine:
        """Parse a ``report_students`` row; ``share`` is its images over ``credited``."""
        share = int(row["images"]) / credited if credited else 0.0
        # Milliseconds: the sum of float4 reports carries noise below them.
        return typed_row(cls, row, share=share, compute_seconds=round(row["compute_seconds"], 3))


@dataclass(frozen=True)
class RunSummary:
    """What the run did as a whole."""

    run_id: int
    name: str
    mode: str
    state: str
    images: int  # images trained on
    steps: int  # optimizer steps (an alternating step publishes two versions)
    versions: int
    created_at: datetime
    completed_at: datetime | None
    wall_seconds: float  # creation to completion (to now while it runs)
    fid: float | None  # the latest recorded score, when the coordinator scored the run
    fid_version: int | None

    @classmethod
    def read(cls, db: Database, run: RunRow) -> RunSummary:
        """The summary of ``run``: its times (``report_run_times``) and latest FID."""
        times = db.fetch_one("report_run_times", run_id=run.id)
        assert times is not None  # ``run`` was just read
        scores = db.fetch_all("fid_history", run_id=run.id)
        return typed_row(
            cls, times, run_id=run.id, name=run.name, mode=run.mode, state=run.state,
            images=run.images_seen, steps=run.version // run.plan.versions_per_step,
            versions=run.version, fid=float(scores[-1]["fid"]) if scores else None,
            fid_version=int(scores[-1]["version"]) if scores else None,
        )  # fmt: skip


@dataclass(frozen=True)
class Report:
    """A run's summary and its students' lines."""

    run: RunSummary
    students: list[StudentLine]

    def to_json(self) -> dict[str, Any]:
        """Plain data for ``--json`` (times as ISO 8601)."""
        return {
            "run": _jsonable(asdict(self.run)),
            "students": [_jsonable(asdict(line)) for line in self.students],
        }

    def to_csv(self) -> str:
        """One row per student, under a header (:data:`CSV_COLUMNS`), for a spreadsheet."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for line in self.students:
            fields = _jsonable(asdict(line)) | {"run_id": self.run.run_id}
            fields["share"] = f"{line.share:.4f}"
            fields["compute_seconds"] = f"{line.compute_seconds:.1f}"
            writer.writerow("" if fields[c] is None else fields[c] for c in CSV_COLUMNS)
        return out.getvalue()


def build_report(db: Database, run_id: int | None = None) -> Report:
    """The report of run ``run_id`` (default: the run ``status`` shows).

    Raises :class:`ReportRefused` for a role that may not read it, :class:`GanError` when
    there is no such run.
    """
    run = latest_run(db) if run_id is None else run_by_id(db, run_id)
    if run is None:
        raise GanError(
            "the database holds no run yet" if run_id is None else f"there is no run {run_id}"
        )
    try:
        rows = db.fetch_all("report_students", run_id=run.id)
    except DatabaseError as exc:
        if exc.sqlstate == INSUFFICIENT_PRIVILEGE:
            raise ReportRefused(
                f"the report is the instructor's: this role may not read it ({exc})"
            ) from exc
        raise
    summary = RunSummary.read(db, run)
    credited = sum(int(row["images"]) for row in rows)
    return Report(summary, [StudentLine.from_row(row, credited) for row in rows])


def render(report: Report, console: Console) -> None:
    """The report as text: the run's summary, then one table line per student."""
    run = report.run
    fid = "not scored" if run.fid is None else f"{run.fid:.2f} (version {run.fid_version})"
    console.print(Text(f"run {run.run_id}: {run.name} ({run.mode}, {run.state})"))
    console.print(
        f"images {run.images}, steps {run.steps} (versions {run.versions}), started "
        f"{_clock(run.created_at, None)}, wall time {_duration(run.wall_seconds)}; FID {fid}",
        highlight=False,
    )
    table = Table(
        box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True,
        caption_justify="left", caption="compute: h:mm:ss as the students' workers reported it",
    )  # fmt: skip
    table.add_column("student", no_wrap=True)
    for name in ("units", "images", "share", "compute", "first", "last", "rejected"):
        table.add_column(name, justify="right")
    table.add_column("quarantine")
    day = run.created_at.astimezone().date()
    for line in report.students:
        table.add_row(
            Text(line.student), str(line.units), str(line.images), f"{line.share:.1%}",
            _duration(line.compute_seconds), _clock(line.first_contribution, day),
            _clock(line.last_contribution, day), str(line.rejected),
            "yes" if line.quarantined else (f"{line.strikes} strike(s)" if line.strikes else "-"),
        )  # fmt: skip
    console.print(table)


def _jsonable(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in fields.items()}


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def _clock(value: datetime | None, day: date | None) -> str:
    """Local time; the date too unless it is ``day`` (the run's first: a class run is a day)."""
    if value is None:
        return "-"
    local = value.astimezone()
    return local.strftime("%H:%M" if local.date() == day else "%Y-%m-%d %H:%M")
