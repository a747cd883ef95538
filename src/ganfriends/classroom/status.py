"""``ganfriends status``: where the class run stands, read from the database alone."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ganfriends.db import Database
from ganfriends.rules import plan_from_dict

ACTIVE_SECONDS = 60  # heartbeat younger than this: Active (the seed's dashboard rule)
IDLE_SECONDS = 300  # younger than this: Idle; older: Offline
THROUGHPUT_WINDOW = 120  # seconds of updates over which images/s is measured


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


def read_standing(db: Database, run_id: int) -> list[Standing]:
    """Every student of the run, quarantined ones first (migration 0011's view)."""
    return [
        Standing(
            student=str(row["student"]),
            workers=int(row["workers"]),
            rejections=int(row["rejections"]),
            quarantined=bool(row["quarantined"]),
            timed_out=int(row["timed_out"]),
        )
        for row in db.fetch_all("student_standing", run_id=run_id)
    ]


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


def _hardware(row: dict[str, Any]) -> str:
    parts = [row["gpu_name"] or row["device"]]
    if row["gpu_vram_gb"]:
        parts.append(f"{row['gpu_vram_gb']:.0f} GB VRAM")
    if row["cpu_cores"]:
        parts.append(f"{row['cpu_cores']} cores")
    if row["ram_gb"]:
        parts.append(f"{row['ram_gb']:.0f} GB RAM")
    return ", ".join(parts)


def read_leaderboard(db: Database, run_id: int) -> list[WorkerLine]:
    """One line per student name, best contributors first, with the Active/Idle/Offline rule."""
    return [
        WorkerLine(
            name=row["name"],
            units=int(row["units"]),
            pending=int(row["pending"]),
            images=int(row["images"]),
            rejected=int(row["rejected"]),
            status=activity(float(row["seconds_since_heartbeat"]), bool(row["running"])),
            last_heartbeat=_format_time(row["last_heartbeat"]),
            hardware=_hardware(row),
        )
        for row in db.fetch_all("leaderboard", run_id=run_id)
    ]


def read_status(db: Database) -> RunStatus | None:
    """The latest run's status (the running one if any), or None when there is no run."""
    run = db.fetch_one("status_latest_run")
    if run is None:
        return None
    run_id, version = int(run["id"]), int(run["version"])
    units = db.fetch_one("status_units", run_id=run_id, version=version) or {}
    speed = db.fetch_one("throughput", run_id=run_id, window=THROUGHPUT_WINDOW) or {}
    latest = db.fetch_one("latest_update", run_id=run_id) or {}
    scores = db.fetch_all("fid_history", run_id=run_id)
    span = speed.get("span_seconds") or 0.0
    updates = int(speed.get("updates") or 0)
    # n updates span n-1 intervals: count the images after the first one.
    rate = (int(speed.get("images") or 0) * (updates - 1) / updates / span) if span > 0 else 0.0
    plan = plan_from_dict(run["mode"], run["plan"])
    workers = read_leaderboard(db, run_id)
    return RunStatus(
        run_id=run_id,
        name=run["name"],
        state=run["state"],
        version=version,
        mode=str(run["mode"]),
        versions_per_step=plan.versions_per_step,
        total_updates=plan.total_versions,
        epoch=plan.epochs_done(version),
        epochs=plan.epochs,
        images_seen=int(run["images_seen"]),
        units={k: int(units.get(k) or 0) for k in ("pending", "claimed", "expired", "done")},
        images_per_second=rate,
        d_loss=latest.get("d_loss"),
        g_loss=latest.get("g_loss"),
        d_real=latest.get("d_real"),
        d_fake=latest.get("d_fake"),
        fid=float(scores[-1]["fid"]) if scores else None,
        fid_version=int(scores[-1]["version"]) if scores else None,
        workers=workers,
        students=read_standing(db, run_id),
    )


def _format_time(value: datetime | None) -> str:
    return value.astimezone().strftime("%H:%M:%S") if value else "-"


def one_line(status: RunStatus) -> str:
    """The demo's live line: step or version, epoch %, images/s, active workers, losses."""
    losses = (
        f"D {status.d_loss:.3f} G {status.g_loss:.3f}"
        if status.d_loss is not None
        else "no update yet"
    )
    percent = 100 * status.version / max(1, status.total_updates)
    return (
        f"{status.progress} | "
        f"epoch {status.epoch:.2f}/{status.epochs} ({percent:.0f}%) | "
        f"{status.images_per_second:,.0f} img/s | {status.active_workers} workers active | {losses}"
    )


def render(status: RunStatus, console: Console) -> None:
    """Print the status as a human reads it."""
    # Names come from students and instructors: print them as text, never as markup.
    console.print(
        f"[bold]run {status.run_id}[/] {escape(status.name)} ({status.mode}): {status.state}"
    )
    console.print(one_line(status))
    u = status.units
    if status.fid is not None:
        console.print(f"sample quality: FID {status.fid:.2f} at version {status.fid_version}")
    console.print(
        f"units of this version: {u['pending']} pending, {u['claimed']} claimed, "
        f"{u['expired']} expired lease, {u['done']} done | {status.images_seen:,} images trained"
    )
    if status.waiting_workers:
        console.print(
            f"[yellow]{status.waiting_workers} active worker(s) wait for work while this version "
            "finishes: more units per update (coordinator --workunits-per-update) keeps a "
            "class this size busy[/]"
        )
    table = Table(title="leaderboard")
    for column in ("name", "units", "images", "rejected", "status", "last heartbeat", "hardware"):
        table.add_column(
            column, justify="right" if column in ("units", "images", "rejected") else "left"
        )
    for w in status.workers:
        table.add_row(
            Text(w.name),
            f"{w.units} ({w.pending} pending)" if w.pending else str(w.units),
            f"{w.images:,}",
            str(w.rejected),
            w.status,
            w.last_heartbeat,
            Text(w.hardware),
        )
    console.print(table)
    for standing in status.flagged:
        colour = "red" if standing.quarantined else "yellow"
        console.print(Text(standing.describe(), style=colour))
