"""The worker's side of the queue: register, claim units under a lease, upload, give back.

A claim's lease ``token`` is the worker's right to upload that unit's result; the database
checks it (and the run's student limits) in ``submit_result``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from ganfriends.compat import TOO_OLD_STATE, WORKER_VERSION, WorkerTooOld
from ganfriends.db import Database, DatabaseError
from ganfriends.db.rows import typed_row
from ganfriends.rules import Unit


def unit_of(row: dict[str, Any]) -> Unit:
    """The :class:`~ganfriends.rules.Unit` of a unit row (``unit_index``, ``device``)."""
    device = row["device"]
    return Unit(int(row["unit_index"]), None if device is None else int(device))


@dataclass(frozen=True)
class Claim:
    """A unit leased to a worker: the lease ``token`` is its right to upload."""

    unit_id: int
    version: int
    unit: Unit
    token: UUID
    expires_at: datetime
    backup: bool

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Claim:
        """Parse a ``claim_unit`` / ``claim_backup_unit`` row."""
        return typed_row(cls, row, unit=unit_of(row))


@dataclass(frozen=True)
class Hardware:
    """What a worker reports about its machine (shown on the leaderboard)."""

    device: str
    gpu_name: str | None
    gpu_vram_gb: float | None
    cpu_cores: int
    ram_gb: float | None


def register_worker(
    db: Database,
    run_id: int,
    name: str,
    hostname: str,
    hw: Hardware,
    *,
    version: str = WORKER_VERSION,
) -> int:
    """Put a worker on the run's leaderboard; returns its id. ``version`` is the ganfriends
    release it declares: :class:`WorkerTooOld` when the run needs a newer one (migration 0013)."""
    try:
        row = db.fetch_one(
            "register_worker",
            run_id=run_id,
            name=name,
            hostname=hostname,
            device=hw.device,
            gpu_name=hw.gpu_name,
            gpu_vram_gb=hw.gpu_vram_gb,
            cpu_cores=hw.cpu_cores,
            ram_gb=hw.ram_gb,
            version=version,
        )
    except DatabaseError as exc:
        if exc.sqlstate == TOO_OLD_STATE:
            raise WorkerTooOld(exc.reason) from exc
        raise
    assert row is not None
    return int(row["id"])


def check_version(db: Database, run_id: int, version: str = WORKER_VERSION) -> None:
    """:class:`WorkerTooOld` when the run needs a newer release than ``version``: what a worker
    asks before it loads its data (registration refuses it anyway, in the database)."""
    row = db.fetch_one("version_refusal", run_id=run_id, version=version)
    if row is not None and row["refusal"] is not None:
        raise WorkerTooOld(str(row["refusal"]))


def claim(db: Database, run_id: int, worker_id: int, count: int = 1) -> list[Claim]:
    """The next units for this worker, in unit order: up to ``count`` pending ones (the run caps
    how many), else one backup copy of a straggler's unit; empty when there is nothing to do."""
    with db.transaction() as tx:
        rows = tx.fetch_all("claim_units", run_id=run_id, worker_id=worker_id, count=count)
        if not rows:
            row = tx.fetch_one("claim_backup_unit", run_id=run_id, worker_id=worker_id)
            rows = [] if row is None else [row]
    return [Claim.from_row(r) for r in rows]


@dataclass(frozen=True)
class Outgoing:
    """A computed unit, ready to upload under its claim's lease."""

    claim: Claim
    images: int
    payload: bytes
    device_state: bytes | None
    compute_seconds: float


def submit(db: Database, run_id: int, worker_id: int, results: Sequence[Outgoing]) -> set[int]:
    """Upload results in one round trip and one transaction, each under its own lease; the ids
    of the units whose result was stored (a late, duplicate or foreign one is refused, absent).

    The uploads are pipelined ``submit_result`` statements with binary parameters, in unit id
    order: the heartbeat locks this worker's units in that order too (one lock order, migration
    0008). One statement per result rather than a function taking arrays: a bytea[] parameter
    costs the server a copy of every element (measured: 4 x 4.6 MB took 210 ms as an array,
    80 ms pipelined).
    """
    ordered = sorted(results, key=lambda r: r.claim.unit_id)
    rows = db.fetch_each(
        "submit_result",
        [
            {
                "run_id": run_id,
                "worker_id": worker_id,
                "token": r.claim.token,
                "images": r.images,
                "payload": r.payload,
                "device_state": r.device_state,
                "compute_seconds": r.compute_seconds,
            }
            for r in ordered
        ],
    )
    return {int(row["unit_id"]) for row in rows if row is not None}


def release(db: Database, worker_id: int, claims: Sequence[Claim]) -> None:
    """Give claimed units back at once (each becomes pending unless another copy is live)."""
    for claimed in claims:
        db.execute("release_lease", token=claimed.token, worker_id=worker_id)
