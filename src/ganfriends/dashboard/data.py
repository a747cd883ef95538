"""What the dashboard shows, read from the database with named queries (no Streamlit here).

Everything is read-only: :func:`open_database` connects with ``default_transaction_read_only``,
so a query that tried to write would fail rather than touch the class run. The run's status is
the one ``ganfriends status`` prints, from the same builder (:mod:`ganfriends.run_status`); this
module adds progress, ETA and the page's histories.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from ganfriends.db import Database, sql
from ganfriends.db.errors import DatabaseError
from ganfriends.db.rows import typed_row
from ganfriends.run_status import ACTIVE_SECONDS, RunStatus, build_status, run_by_id

APPLICATION_NAME = "ganfriends-dashboard"
READ_ONLY = "-c default_transaction_read_only=on"
SMOOTHING_UPDATES = 5  # throughput curve: images/s over this many consecutive updates
GAP_SECONDS = 60.0  # a longer silence between two updates: the coordinator was down
RECENT_REJECTIONS = 20


def read_only_url(url: str) -> str:
    """``url`` with the session option that makes every transaction read-only.

    Options already in the URL are kept (``Database`` adds the search path to them in turn).
    """
    try:
        existing = conninfo_to_dict(url).get("options") or ""
        return make_conninfo(url, options=f"{existing} {READ_ONLY}".strip())
    except psycopg.Error as exc:  # a malformed URL
        raise DatabaseError(f"invalid database URL: {' '.join(str(exc).split())}") from exc


def open_database(url: str) -> Database:
    """A small read-only pool for one dashboard server (shared by its browser sessions)."""
    return Database(read_only_url(url), max_size=4, application_name=APPLICATION_NAME)


def safe_location(url: str) -> str:
    """``user@host:port/dbname`` of a URL: what the page may show (never the password)."""
    try:
        info = conninfo_to_dict(url)
    except psycopg.Error:  # shown, not fatal
        return "(invalid URL)"
    host = info.get("host") or "localhost"
    port = f":{info['port']}" if info.get("port") else ""
    user = f"{info['user']}@" if info.get("user") else ""
    return f"{user}{host}{port}/{info.get('dbname') or ''}"


@dataclass(frozen=True)
class RunChoice:
    """One entry of the run selector."""

    run_id: int
    name: str
    state: str
    version: int
    created_at: datetime
    latest: bool  # the run ``ganfriends status`` reports: the default choice

    @property
    def label(self) -> str:
        """How the selector shows it."""
        return (
            f"run {self.run_id}: {self.name} ({self.state}, version {self.version}, "
            f"{self.created_at.astimezone():%Y-%m-%d %H:%M})"
        )


def list_runs(db: Database) -> list[RunChoice]:
    """Every run, newest first."""
    return [typed_row(RunChoice, r, run_id=int(r["id"])) for r in db.fetch_all("dashboard_runs")]


@dataclass
class Snapshot:
    """A run as the dashboard's header shows it: the status snapshot plus progress and ETA."""

    status: RunStatus
    images_per_update: int
    epoch_percent: float  # of the epoch in progress (100 once the run is over)
    run_percent: float
    eta_seconds: float | None  # None when the run is over or nothing has been measured yet

    @property
    def credited_images(self) -> int:
        """Images credited to all workers: the denominator of each one's share of the work."""
        return sum(w.images for w in self.status.workers)


def snapshot(db: Database, run_id: int) -> Snapshot | None:
    """The run's status (:func:`ganfriends.run_status.build_status`) with its progress and ETA;
    None for an unknown run."""
    run = run_by_id(db, run_id)
    if run is None:
        return None
    status = build_status(db, run)
    plan, version = run.plan, run.version
    complete = run.state == "complete" or version >= plan.total_versions
    per_update = plan.images_per_version
    eta = None
    if run.state == "running" and not complete and status.images_per_second > 0:
        eta = (plan.total_versions - version) * per_update / status.images_per_second
    # 2.25 epochs done is 25% into the third epoch; a run that ends on an epoch's last update
    # shows that epoch full, not the next one empty.
    fraction = status.epoch - math.floor(status.epoch)
    if fraction == 0 and complete and status.epoch > 0:
        fraction = 1.0
    return Snapshot(
        status=status,
        images_per_update=per_update,
        epoch_percent=100.0 * fraction,
        run_percent=100.0 * version / max(1, plan.total_versions),
        eta_seconds=eta,
    )


@dataclass(frozen=True)
class Resources:
    """What the workers active in a run bring together."""

    workers: int
    hosts: int
    cpu_cores: int
    ram_gb: float
    gpus: int
    gpu_vram_gb: float


def resources(db: Database, run_id: int) -> Resources:
    """Sum of the cores, RAM, GPUs and VRAM of the run's active workers (hosts counted once)."""
    row = db.fetch_one("dashboard_resources", run_id=run_id, active_seconds=ACTIVE_SECONDS)
    assert row is not None  # an aggregate always returns one row
    return typed_row(Resources, row)


def loss_history(db: Database, run_id: int) -> list[dict[str, Any]]:
    """One row per update: version, epoch, d_loss, g_loss, d_real, d_fake, created_at, ..."""
    return db.fetch_all("loss_history", run_id=run_id)


def throughput_history(
    db: Database, run_id: int, smoothing: int = SMOOTHING_UPDATES
) -> list[dict[str, Any]]:
    """Images/s over time: ``{"time", "version", "images_per_second"}`` per update.

    Each point is the images of the last ``smoothing`` updates over the seconds they took. An
    interval the coordinator was away (NULL, or over both 10x the median and ``GAP_SECONDS``) is
    left out rather than shown as a dip to almost zero; pauses for evaluation stay in.
    """
    rows = db.fetch_all("dashboard_throughput_history", run_id=run_id)
    gaps = sorted(float(r["seconds"]) for r in rows if r["seconds"] is not None)
    limit = max(10 * gaps[len(gaps) // 2], GAP_SECONDS) if gaps else math.inf
    window: list[tuple[int, float]] = []
    points: list[dict[str, Any]] = []
    for row in rows:
        seconds = row["seconds"]
        if seconds is None or seconds > limit:
            window.clear()  # the coordinator restarted: measure afresh
            continue
        window.append((int(row["images"]), float(seconds)))
        del window[:-smoothing]
        span = sum(s for _, s in window)
        if span > 0:
            points.append(
                {
                    "time": row["created_at"],
                    "version": int(row["version"]),
                    "images_per_second": sum(i for i, _ in window) / span,
                }
            )
    return points


def has_fid() -> bool:
    """Whether FID can be shown: the evaluation work adds a ``fid_history`` named query."""
    return "fid_history" in sql.queries()


def fid_history(db: Database, run_id: int) -> list[dict[str, Any]]:
    """``fid_history`` rows (at least ``version`` and ``fid``), oldest first."""
    return db.fetch_all("fid_history", run_id=run_id)


def sample_versions(db: Database, run_id: int) -> list[int]:
    """Versions that have a sample grid, oldest first."""
    return [int(r["version"]) for r in db.fetch_all("dashboard_sample_versions", run_id=run_id)]


def sample_png(db: Database, run_id: int, version: int) -> bytes | None:
    """The PNG grid drawn at ``version``, or None."""
    row = db.fetch_one("dashboard_sample", run_id=run_id, version=version)
    return None if row is None else bytes(row["png"])


def rejections_by_worker(db: Database, run_id: int) -> list[dict[str, Any]]:
    """Per student name: rejected uploads, the latest one's time and reason."""
    return db.fetch_all("dashboard_rejections_by_worker", run_id=run_id)


def recent_rejections(
    db: Database, run_id: int, limit: int = RECENT_REJECTIONS
) -> list[dict[str, Any]]:
    """The newest rejected uploads: name, version, unit_index, reason, created_at."""
    return db.fetch_all("dashboard_recent_rejections", run_id=run_id, limit=limit)
