"""Versions: publishing one (weights, optimizer states, units, inputs) and reading it back.

Publishing a version — v0 at creation, v+1 after each combine — is one function,
:func:`publish`, whose statements all run in the caller's transaction.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ganfriends.classroom.queue.runs import Run
from ganfriends.db import Database, Tx
from ganfriends.errors import GanError
from ganfriends.rules import Unit
from ganfriends.rules.base import UpdateRecord


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
class Retention:
    """Which weight versions stay in the database."""

    keep_last: int
    keep_every: int


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
    downloads: Blobs | None = None,
) -> None:
    """Publish weights ``version`` of ``run`` with the optimizer states that go with them and
    the units to compute on them — in the caller's transaction, so a crash leaves v or v+1.
    ``downloads`` are the copies workers download when the run rounds them (migration 0016).

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
        generator_download=None if downloads is None else downloads.generator,
        discriminator_download=None if downloads is None else downloads.discriminator,
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


NETWORKS = ("generator", "discriminator")


@dataclass(frozen=True)
class Changed:
    """A version's networks as a worker that holds some already downloads them: each one's
    SHA-256, and the blobs of those whose digest differs from the one the worker holds."""

    digests: dict[str, bytes]
    blobs: dict[str, bytes]


def changed_weights(
    db: Database, run_id: int, version: int, held: Mapping[str, bytes]
) -> Changed | None:
    """The networks of ``version`` that differ from ``held`` (network -> the digest of the blob
    the worker holds; a network not in it is downloaded); None once the version is pruned."""
    row = db.fetch_one(
        "get_changed_weights",
        run_id=run_id,
        version=version,
        **{f"{network}_sha256": held.get(network) for network in NETWORKS},
    )
    if row is None:
        return None
    return Changed(
        digests={network: bytes(row[f"{network}_sha256"]) for network in NETWORKS},
        blobs={network: bytes(row[network]) for network in NETWORKS if row[network] is not None},
    )
