"""The typed queue layer between the coordinator/worker loops and the SQL of ``queries.sql``.

Rows become frozen dataclasses here, at the boundary (as procrastinate's manager does), so the
loops never index dicts; and publishing a version — v0 at creation, v+1 after each combine — is
one function, :func:`publish`, whose statements all run in the caller's transaction.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from ganfriends.config import Config, config_from_stored
from ganfriends.db import Database, Tx
from ganfriends.errors import GanError
from ganfriends.models import ModelConfig
from ganfriends.rules import Plan, Unit, plan_from_dict
from ganfriends.rules.base import UpdateRecord


@dataclass(frozen=True)
class Run:
    """A ``runs`` row."""

    id: int
    name: str
    state: str
    mode: str
    plan: Plan
    total_versions: int
    stored_config: dict[str, Any]
    model_config: ModelConfig
    fingerprint: dict[str, Any]
    lease_seconds: float
    max_backups: int
    max_units_per_claim: int
    version: int
    images_seen: int

    @property
    def config(self) -> Config:
        """The run's settings, typed (secrets masked)."""
        return config_from_stored(self.stored_config)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Run:
        """Parse a ``runs`` row."""
        return cls(
            id=int(row["id"]),
            name=str(row["name"]),
            state=str(row["state"]),
            mode=str(row["mode"]),
            plan=plan_from_dict(str(row["mode"]), dict(row["plan"])),
            total_versions=int(row["total_versions"]),
            stored_config=dict(row["config"]),
            model_config=ModelConfig.from_dict(row["model_config"]),
            fingerprint=dict(row["fingerprint"]),
            lease_seconds=float(row["lease_seconds"]),
            max_backups=int(row["max_backups"]),
            max_units_per_claim=int(row["max_units_per_claim"]),
            version=int(row["version"]),
            images_seen=int(row["images_seen"]),
        )


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
        device = row["device"]
        return cls(
            unit_id=int(row["unit_id"]),
            version=int(row["version"]),
            unit=Unit(int(row["unit_index"]), None if device is None else int(device)),
            token=row["token"],
            expires_at=row["expires_at"],
            backup=bool(row["backup"]),
        )


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
        device = row["device"]
        return cls(
            unit_id=int(row["unit_id"]),
            unit=Unit(int(row["unit_index"]), None if device is None else int(device)),
            worker_id=int(row["worker_id"]),
            images=int(row["images"]),
            payload=bytes(row["payload"]),
            device_state=None if row["device_state"] is None else bytes(row["device_state"]),
            arrived=row.get("created_at"),
            student=str(row["student"]),
        )


@dataclass(frozen=True)
class UnitCounts:
    """Units of one version: how many have a result, out of how many."""

    done: int
    total: int


@dataclass(frozen=True)
class Blobs:
    """The encoded networks (or optimizer states) of one version: G's and D's."""

    generator: bytes
    discriminator: bytes


@dataclass(frozen=True)
class Consumed:
    """What the update that publishes a version consumed: the previous version's results, as
    the copy of unit ``unit_ids[i]`` uploaded by worker ``worker_ids[i]``."""

    unit_ids: Sequence[int]
    worker_ids: Sequence[int]
    record: UpdateRecord
    epoch: float
    contributors: int
    wait_seconds: float
    # The per-group reference norms screening recorded for this version (the next versions'
    # history); None where nothing was screened.
    norms: Mapping[str, float] | None = None


@dataclass(frozen=True)
class StudentLimits:
    """What one student may hold of a run, whatever the number of their workers (migration
    0011); stored in the run's row when it is created."""

    max_live_workers: int = 8
    max_lease_factor: float = 3.0
    quarantine_after: int = 3


DEFAULT_LIMITS = StudentLimits()


@dataclass(frozen=True)
class Retention:
    """Which weight versions stay in the database."""

    keep_last: int
    keep_every: int


# ----------------------------------------------------------------------------- runs


def create_run(
    tx: Tx,
    *,
    name: str,
    mode: str,
    plan: Plan,
    config: dict[str, Any],
    model_config: ModelConfig,
    fingerprint: dict[str, Any],
    lease_seconds: float,
    max_backups: int,
    max_units_per_claim: int,
    limits: StudentLimits = DEFAULT_LIMITS,
) -> Run:
    """Insert a run row (its version 0 is published separately, in the same transaction)."""
    row = tx.fetch_one(
        "create_run",
        name=name,
        mode=mode,
        plan=json.dumps(plan.to_dict()),
        total_versions=plan.total_versions,
        config=json.dumps(config),
        model_config=json.dumps(model_config.to_dict()),
        fingerprint=json.dumps(fingerprint),
        lease_seconds=lease_seconds,
        max_backups=max_backups,
        max_units_per_claim=max_units_per_claim,
        max_live_workers=limits.max_live_workers,
        max_lease_factor=limits.max_lease_factor,
        quarantine_after=limits.quarantine_after,
    )
    assert row is not None
    return Run.from_row(row)


def latest_running_run(db: Database) -> Run | None:
    """The run a coordinator resumes and a worker joins."""
    row = db.fetch_one("latest_running_run")
    return None if row is None else Run.from_row(row)


def latest_running_run_id(db: Database) -> int | None:
    """The id of the run a coordinator resumes, without reading its plan (one this version
    cannot run can still be stopped by ``--new-run``)."""
    row = db.fetch_one("latest_running_run")
    return None if row is None else int(row["id"])


def get_run(db: Database, run_id: int) -> Run:
    """A run by id."""
    row = db.fetch_one("get_run", run_id=run_id)
    if row is None:
        raise GanError(f"run {run_id} does not exist")
    return Run.from_row(row)


# ----------------------------------------------------------------------------- publishing


def _measured(value: float) -> float | None:
    """NULL in the history for what a version's phase does not measure (NaN in the record)."""
    return None if math.isnan(value) else value


def publish(
    tx: Tx,
    run: Run,
    version: int,
    *,
    weights: Blobs,
    optimizer_states: Blobs,
    units: Sequence[Unit],
    consumed: Consumed | None,
    retention: Retention | None = None,
    inputs: dict[str, bytes] | None = None,
    device_moves: Sequence[int] | None = None,
) -> None:
    """Publish weights ``version`` of ``run`` with the optimizer states that go with them and
    the units to compute on them — in the caller's transaction, so a crash leaves v or v+1.

    For v+1 (``consumed`` given), the same transaction credits the workers whose results were
    combined, keeps the device states they carried (then moves them by ``device_moves``: device
    n's becomes ``device_moves[n]``'s), deletes the consumed version's units (their results and
    leases go too) and inputs, records the update and advances the run, guarded by its version.
    ``inputs`` are what the version publishes besides weights, one blob per name.
    """
    tx.execute("publish_lock_timeout")
    if consumed is not None:
        used = {"unit_ids": list(consumed.unit_ids), "worker_ids": list(consumed.worker_ids)}
        tx.execute("credit_workers", **used)
        tx.execute("save_device_states", **used)
        if device_moves is not None:
            tx.execute(
                "permute_device_states",
                run_id=run.id,
                sources=list(range(len(device_moves))),
                targets=list(device_moves),
            )
        tx.execute("record_hoarding", run_id=run.id, version=version - 1)
        tx.execute("delete_version_units", run_id=run.id, version=version - 1)
        tx.execute("delete_inputs", run_id=run.id, version=version - 1)
        record = consumed.record
        tx.execute(
            "insert_update",
            run_id=run.id,
            version=version,
            epoch=consumed.epoch,
            images=record.images,
            images_seen=run.images_seen + record.images,
            d_loss=_measured(record.d_loss),
            g_loss=_measured(record.g_loss),
            d_real=_measured(record.d_real),
            d_fake=_measured(record.d_fake),
            contributors=consumed.contributors,
            wait_seconds=consumed.wait_seconds,
            norms=None if consumed.norms is None else json.dumps(dict(consumed.norms)),
        )
        advanced = tx.execute(
            "advance_run",
            run_id=run.id,
            new_version=version,
            images=record.images,
            complete=not units,
        )
        if advanced != 1:
            raise GanError(f"run {run.id} was advanced by someone else; stopping")
    tx.execute(
        "insert_weights",
        run_id=run.id,
        version=version,
        generator=weights.generator,
        discriminator=weights.discriminator,
    )
    tx.execute(
        "upsert_optimizer_states",
        run_id=run.id,
        version=version,
        generator=optimizer_states.generator,
        discriminator=optimizer_states.discriminator,
    )
    if inputs:
        tx.execute(
            "insert_inputs",
            run_id=run.id,
            version=version,
            names=list(inputs),
            blobs=list(inputs.values()),
        )
    if units:
        tx.execute(
            "insert_units",
            run_id=run.id,
            version=version,
            unit_indices=[u.index for u in units],
            devices=[u.device for u in units],
        )
    tx.execute("notify_work", run_id=run.id)  # sent at commit: idle workers wake to the units
    if retention is not None:
        tx.execute(
            "prune_weights",
            run_id=run.id,
            newest=version,
            keep_last=retention.keep_last,
            keep_every=retention.keep_every,
        )


def weights(db: Database, run_id: int, version: int) -> Blobs | None:
    """The published networks of ``version`` (None once pruned)."""
    row = db.fetch_one("get_weights", run_id=run_id, version=version)
    return None if row is None else Blobs(row["generator"], row["discriminator"])


def optimizer_states(db: Database, run_id: int) -> tuple[int, Blobs] | None:
    """The coordinator's optimizer states and the version they go with."""
    row = db.fetch_one("get_optimizer_states", run_id=run_id)
    if row is None:
        return None
    return int(row["version"]), Blobs(row["generator"], row["discriminator"])


def inputs(db: Database, run_id: int, version: int, names: Sequence[str]) -> dict[str, bytes]:
    """The named inputs of a version (missing names are simply absent)."""
    rows = db.fetch_all("get_inputs", run_id=run_id, version=version, names=list(names))
    return {str(r["name"]): bytes(r["blob"]) for r in rows}


def device_state(db: Database, run_id: int, device: int) -> bytes | None:
    """A device's local state blob, or None before its first published unit."""
    row = db.fetch_one("get_device_state", run_id=run_id, device=device)
    return None if row is None else bytes(row["state"])


# ----------------------------------------------------------------------------- the coordinator


def count_units(db: Database, run_id: int, version: int) -> UnitCounts:
    """How far a version's units are."""
    row = db.fetch_one("count_units", run_id=run_id, version=version)
    assert row is not None
    return UnitCounts(done=int(row["done"]), total=int(row["total"]))


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
    return [
        EndedSession(int(r["pid"]), str(r["role"]), float(r["seconds"])) for r in rows if r["ended"]
    ]


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


# ----------------------------------------------------------------------------- workers


@dataclass(frozen=True)
class Hardware:
    """What a worker reports about its machine (shown on the leaderboard)."""

    device: str
    gpu_name: str | None
    gpu_vram_gb: float | None
    cpu_cores: int
    ram_gb: float | None


def register_worker(db: Database, run_id: int, name: str, hostname: str, hw: Hardware) -> int:
    """Put a worker on the run's leaderboard; returns its id."""
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
    )
    assert row is not None
    return int(row["id"])


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


def set_upload_limit(db: Database | Tx, run_id: int, max_upload_bytes: int) -> None:
    """The most bytes (result plus device state) an upload of this run may carry."""
    db.execute("set_upload_limit", run_id=run_id, max_upload_bytes=max_upload_bytes)


def run_state(db: Database, run_id: int) -> str | None:
    """A run's state ('running', 'complete', 'stopped'), or None when it is gone."""
    row = db.fetch_one("run_state", run_id=run_id)
    return None if row is None else str(row["state"])
