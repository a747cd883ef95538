"""``ganfriends status``: where the class run stands, read from the database alone.

The status itself is built by :mod:`ganfriends.run_status` (the dashboard reads the same one);
this module prints it. Its names stay importable from here.
"""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ganfriends.run_status import (
    RunStatus,
    Standing,
    WorkerLine,
    activity,
    read_leaderboard,
    read_standing,
    read_status,
)

__all__ = [
    "RunStatus",
    "Standing",
    "WorkerLine",
    "activity",
    "one_line",
    "read_leaderboard",
    "read_standing",
    "read_status",
    "render",
]


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
