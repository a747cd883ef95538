"""Where a class run stands: one :class:`RunStatus`, built from the database alone.

Read by ``ganfriends status`` (:mod:`ganfriends.classroom.status` prints it) and by the dashboard
(:mod:`ganfriends.dashboard.data` adds progress and ETA): one builder, one set of named queries
and one throughput formula for both. It sits below both and reads only ``db`` and the run's plan
(:func:`ganfriends.rules.plan_from_dict`): the read-only dashboard reaches nothing of the
transport. Every row becomes a typed object here, at the SQL boundary.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from ganfriends.db import Database
from ganfriends.db.rows import typed_row
from ganfriends.rules import Plan, plan_from_dict

ACTIVE_SECONDS = 60  # heartbeat younger than this: Active (the seed's dashboard rule)
IDLE_SECONDS = 300  # younger than this: Idle; older: Offline
THROUGHPUT_WINDOW = 120  # seconds of updates over which images/s is measured
UNIT_STATES = ("pending", "claimed", "expired", "done")


def activity(seconds_since_heartbeat: float, running: bool) -> str:
    """Active / Idle / Offline from the age of a worker's last heartbeat."""
    if not running or seconds_since_heartbeat >= IDLE_SECONDS:
        return "Offline"
    return "Active" if seconds_since_heartbeat < ACTIVE_SECONDS else "Idle"


@dataclass
class WorkerLine:
    """One leaderboard line."""

    name: str
    units: int  # credited, uploads waiting for the coordinator included
    images: int
    rejected: int
    status: str
    last_heartbeat: str
    hardware: str
    pending: int = 0  # of ``units``: uploaded, not yet combined (dropped if a copy loses)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> WorkerLine:
        """Parse a ``leaderboard`` row, with the Active/Idle/Offline rule."""
        return typed_row(
            cls,
            row,
            status=activity(float(row["seconds_since_heartbeat"]), bool(row["running"])),
            last_heartbeat=_format_time(row["last_heartbeat"]),
            hardware=_hardware(row),
        )


@dataclass(frozen=True)
class Standing:
    """What one student (a role, whatever the number of their workers) did that the instructor
    should see: strikes counted towards quarantine (rejected uploads, units held to the lease
    bound without an upload) and leases that timed out."""

    student: str
    workers: int
    rejections: int
    quarantined: bool
    timed_out: int

    @property
    def flagged(self) -> bool:
        """Whether anything about this student is worth a line."""
        return self.quarantined or self.rejections > 0 or self.timed_out > 0

    def describe(self) -> str:
        """One plain-text line for ``status`` and the dashboard."""
        what = [f"{self.rejections} strike(s)"] if self.rejections else []
        if self.timed_out:
            what.append(f"{self.timed_out} lease(s) timed out")
        line = f"{self.student}: {', '.join(what) or 'nothing'}"
        if self.quarantined:
            line += (
                f" — QUARANTINED (no new units; `ganfriends students pardon {self.student}` "
                "lifts it)"
            )
        return line

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Standing:
        """Parse a ``student_standing`` row."""
        return typed_row(cls, row)


@dataclass(frozen=True)
class RunRow:
    """What a status reads of a ``runs`` row."""

    id: int
    name: str
    state: str
    mode: str
    plan: Plan
    version: int
    images_seen: int

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> RunRow:
        """Parse a ``runs`` row (``status_latest_run``, ``dashboard_run``)."""
        return typed_row(cls, row, plan=plan_from_dict(str(row["mode"]), dict(row["plan"])))


@dataclass(frozen=True)
class Throughput:
    """The updates of the last :data:`THROUGHPUT_WINDOW` seconds (a ``throughput`` row)."""

    images: int
    updates: int
    span_seconds: float

    @property
    def images_per_second(self) -> float:
        """n updates span n-1 intervals: the images after the first one over the span."""
        if self.span_seconds <= 0:
            return 0.0
        return self.images * (self.updates - 1) / self.updates / self.span_seconds

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Throughput:
        """Parse a ``throughput`` row (the span is NULL with no update in the window)."""
        return typed_row(cls, row, span_seconds=float(row["span_seconds"] or 0.0))


@dataclass(frozen=True)
class Losses:
    """The latest whole step's measurements (a ``latest_update`` row); None before any."""

    d_loss: float | None = None
    g_loss: float | None = None
    d_real: float | None = None
    d_fake: float | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any] | None) -> Losses:
        """Parse a ``latest_update`` row, or no row."""
        return cls() if row is None else typed_row(cls, row)


@dataclass
class RunStatus:
    """A snapshot of a run."""

    run_id: int
    name: str
    state: str
    version: int
    total_updates: int
    epoch: float
    epochs: int
    images_seen: int
    units: dict[str, int]
    images_per_second: float
    d_loss: float | None
    g_loss: float | None
    d_real: float | None
    d_fake: float | None
    mode: str = "sync"  # the run's rule (ganfriends.rules)
    versions_per_step: int = 1  # an alternating class step publishes a D and a G version
    fid: float | None = None  # the latest recorded score (coordinator --eval-interval)
    fid_version: int | None = None
    workers: list[WorkerLine] = field(default_factory=list)
    students: list[Standing] = field(default_factory=list)

    @property
    def flagged(self) -> list[Standing]:
        """Students with rejections, timed-out leases or a quarantine."""
        return [s for s in self.students if s.flagged]

    @property
    def progress(self) -> str:
        """Where the run is: its optimizer steps (and versions, when a step publishes two)."""
        versions = f"version {self.version}/{self.total_updates}"
        if self.versions_per_step == 1:
            return versions
        per = self.versions_per_step
        return f"step {self.version // per}/{self.total_updates // per} ({versions})"

    @property
    def active_workers(self) -> int:
        """Workers whose heartbeat is recent."""
        return sum(w.status == "Active" for w in self.workers)

    @property
    def waiting_workers(self) -> int:
        """Active workers with no unit to compute: nothing is pending, and there are more active
        workers than claimed units (an estimate from the units students may read)."""
        if self.state != "running" or self.units.get("pending", 0):
            return 0
        return max(0, self.active_workers - self.units.get("claimed", 0))

    def to_json(self) -> dict[str, Any]:
        """Plain dict for ``--json``."""
        return asdict(self) | {
            "active_workers": self.active_workers,
            "waiting_workers": self.waiting_workers,
        }


def read_standing(db: Database, run_id: int) -> list[Standing]:
    """Every student of the run, quarantined ones first (migration 0011's view)."""
    return [Standing.from_row(row) for row in db.fetch_all("student_standing", run_id=run_id)]


def read_leaderboard(db: Database, run_id: int) -> list[WorkerLine]:
    """One line per student name, best contributors first, with the Active/Idle/Offline rule."""
    return [WorkerLine.from_row(row) for row in db.fetch_all("leaderboard", run_id=run_id)]


def read_throughput(db: Database, run_id: int) -> Throughput:
    """The run's recent speed, over the last :data:`THROUGHPUT_WINDOW` seconds of updates."""
    row = db.fetch_one("throughput", run_id=run_id, window=THROUGHPUT_WINDOW)
    assert row is not None  # an aggregate always returns one row
    return Throughput.from_row(row)


def read_unit_counts(db: Database, run_id: int, version: int) -> dict[str, int]:
    """Units of ``version`` by state: pending, claimed, expired (lease), done."""
    row = db.fetch_one("status_units", run_id=run_id, version=version)
    assert row is not None  # an aggregate always returns one row
    return {state: int(row[state]) for state in UNIT_STATES}


def build_status(db: Database, run: RunRow) -> RunStatus:
    """The status of ``run``: its units, speed, latest losses and FID, leaderboard, students."""
    losses = Losses.from_row(db.fetch_one("latest_update", run_id=run.id))
    scores = db.fetch_all("fid_history", run_id=run.id)
    return RunStatus(
        run_id=run.id,
        name=run.name,
        state=run.state,
        version=run.version,
        mode=run.mode,
        versions_per_step=run.plan.versions_per_step,
        total_updates=run.plan.total_versions,
        epoch=run.plan.epochs_done(run.version),
        epochs=run.plan.epochs,
        images_seen=run.images_seen,
        units=read_unit_counts(db, run.id, run.version),
        images_per_second=read_throughput(db, run.id).images_per_second,
        d_loss=losses.d_loss,
        g_loss=losses.g_loss,
        d_real=losses.d_real,
        d_fake=losses.d_fake,
        fid=float(scores[-1]["fid"]) if scores else None,
        fid_version=int(scores[-1]["version"]) if scores else None,
        workers=read_leaderboard(db, run.id),
        students=read_standing(db, run.id),
    )


def latest_run(db: Database) -> RunRow | None:
    """The run ``status`` reports (the running one if any, else the newest), or None."""
    row = db.fetch_one("status_latest_run")
    return None if row is None else RunRow.from_row(row)


def run_by_id(db: Database, run_id: int) -> RunRow | None:
    """A run by id, or None."""
    row = db.fetch_one("dashboard_run", run_id=run_id)
    return None if row is None else RunRow.from_row(row)


def read_status(db: Database) -> RunStatus | None:
    """The latest run's status (the running one if any), or None when there is no run."""
    run = latest_run(db)
    return None if run is None else build_status(db, run)


def _hardware(row: dict[str, Any]) -> str:
    parts = [row["gpu_name"] or row["device"]]
    if row["gpu_vram_gb"]:
        parts.append(f"{row['gpu_vram_gb']:.0f} GB VRAM")
    if row["cpu_cores"]:
        parts.append(f"{row['cpu_cores']} cores")
    if row["ram_gb"]:
        parts.append(f"{row['ram_gb']:.0f} GB RAM")
    return ", ".join(parts)


def _format_time(value: datetime | None) -> str:
    return value.astimezone().strftime("%H:%M:%S") if value else "-"
