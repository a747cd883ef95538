"""Runs: a ``runs`` row typed as :class:`Run`, created, found, and its state read.

A run also carries what each student may hold of it (:class:`StudentLimits`, migration 0011).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ganfriends.compat import RESULT_FORMAT_VERSION
from ganfriends.config import Config, config_from_stored
from ganfriends.db import Database, Tx
from ganfriends.db.rows import typed_row
from ganfriends.errors import GanError
from ganfriends.models import ModelConfig
from ganfriends.rules import Plan, plan_from_dict


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
        mode = str(row["mode"])
        return typed_row(
            cls,
            row,
            plan=plan_from_dict(mode, dict(row["plan"])),
            stored_config=dict(row["config"]),
            model_config=ModelConfig.from_dict(row["model_config"]),
        )


@dataclass(frozen=True)
class StudentLimits:
    """What one student may hold of a run, whatever the number of their workers (migration
    0011); stored in the run's row when it is created."""

    max_live_workers: int = 8
    max_lease_factor: float = 3.0
    quarantine_after: int = 3


DEFAULT_LIMITS = StudentLimits()


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
        min_worker_version=RESULT_FORMAT_VERSION,  # older workers are refused (migration 0013)
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


def set_upload_limit(db: Database | Tx, run_id: int, max_upload_bytes: int) -> None:
    """The most bytes (result plus device state) an upload of this run may carry."""
    db.execute("set_upload_limit", run_id=run_id, max_upload_bytes=max_upload_bytes)


def run_state(db: Database, run_id: int) -> str | None:
    """A run's state ('running', 'complete', 'stopped'), or None when it is gone."""
    row = db.fetch_one("run_state", run_id=run_id)
    return None if row is None else str(row["state"])
