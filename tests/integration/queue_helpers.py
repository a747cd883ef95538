"""Helpers for the queue-level tests: tiny runs, workers, uploads, and test-only raw SQL.

The package never writes SQL in Python; tests may, to move time (push a lease's expiry into the
past) and to read rows no named query returns. :class:`Raw` is that test-only connection.
"""

from __future__ import annotations

import traceback
from typing import Any

import psycopg
import torch
from psycopg.rows import dict_row

from ganfriends.classroom.state import create_run
from ganfriends.compat import WORKER_VERSION
from ganfriends.config import Config
from ganfriends.db import Database
from ganfriends.models import Discriminator, Generator, ModelConfig
from ganfriends.rules import SyncPlan, UnitResult
from ganfriends.rules.sync import collect_gradients
from ganfriends.step import StepStats
from tests.waiting import wait_until

TINY_MODEL = ModelConfig(image_size=32, channels=1, latent_dim=8, g_features=4, d_features=4)
DATASET_SIZE = 640
FINGERPRINT = {
    "name": "fashion-mnist",
    "size": DATASET_SIZE,
    "image_size": 32,
    "channels": 1,
    "digest": "x" * 64,
}
IMAGES_PER_UNIT = 64  # 640 images -> 10 units per epoch


def make_plan(
    units_per_update: int,
    *,
    epochs: int = 1,
    max_updates: int | None = None,
    images_per_unit: int = IMAGES_PER_UNIT,
) -> SyncPlan:
    """The tiny plan every queue test uses."""
    return SyncPlan(
        dataset_size=DATASET_SIZE,
        seed=0,
        images_per_unit=images_per_unit,
        units_per_update=units_per_update,
        micro_batch=min(32, images_per_unit),
        epochs=epochs,
        max_updates=max_updates,
        update_rule="simultaneous",
    )


def new_run(
    db: Database,
    *,
    units_per_update: int = 4,
    lease_seconds: float = 30.0,
    max_backups: int = 1,
    max_units_per_claim: int = 4,
    epochs: int = 1,
    max_updates: int | None = None,
    name: str = "queue-test",
    images_per_unit: int = IMAGES_PER_UNIT,
) -> int:
    """A running run with version-0 weights and the units of version 0 queued."""
    with db.transaction() as tx:
        return create_run(
            tx,
            name=name,
            mode="sync",
            config=Config().to_dict(),
            model_config=TINY_MODEL,
            fingerprint=FINGERPRINT,
            plan=make_plan(
                units_per_update,
                epochs=epochs,
                max_updates=max_updates,
                images_per_unit=images_per_unit,
            ),
            lease_seconds=lease_seconds,
            max_backups=max_backups,
            max_units_per_claim=max_units_per_claim,
        )


def register(db: Database, run_id: int, name: str = "student") -> int:
    """A worker registered on ``run_id``; returns its id."""
    row = db.fetch_one(
        "register_worker",
        run_id=run_id,
        name=name,
        hostname="test-host",
        device="cpu",
        gpu_name=None,
        gpu_vram_gb=None,
        cpu_cores=1,
        ram_gb=None,
        version=WORKER_VERSION,
    )
    assert row is not None
    return int(row["id"])


def claim(db: Database, run_id: int, worker_id: int) -> dict[str, Any] | None:
    """One ``claim_unit`` call."""
    return db.fetch_one("claim_unit", run_id=run_id, worker_id=worker_id)


def claim_backup(db: Database, run_id: int, worker_id: int) -> dict[str, Any] | None:
    """One ``claim_backup_unit`` call."""
    return db.fetch_one("claim_backup_unit", run_id=run_id, worker_id=worker_id)


def one_lease(db: Database, units: int = 1) -> tuple[int, int, dict[str, Any]]:
    """A run of ``units`` units and one worker holding the first: (run id, worker, lease)."""
    run_id = new_run(db, units_per_update=units)
    worker = register(db, run_id)
    lease = claim(db, run_id, worker)
    assert lease is not None
    return run_id, worker, lease


def held_by_a(db: Database, units: int = 1) -> tuple[int, int, int, dict[str, Any]]:
    """A run of ``units`` units, workers A and B registered, A holding the first unit:
    (run id, A, B, A's lease)."""
    run_id = new_run(db, units_per_update=units)
    worker_a, worker_b = register(db, run_id, "a"), register(db, run_id, "b")
    lease = claim(db, run_id, worker_a)
    assert lease is not None
    return run_id, worker_a, worker_b, lease


def primary_and_backup(
    db: Database,
) -> tuple[int, int, int, dict[str, Any], dict[str, Any]]:
    """A one-unit run whose unit worker A holds and worker B holds a backup copy of:
    (run id, A, B, A's lease, B's lease)."""
    run_id, worker_a, worker_b, primary = held_by_a(db)
    backup = claim_backup(db, run_id, worker_b)
    assert backup is not None
    return run_id, worker_a, worker_b, primary, backup


def submit(
    db: Database,
    run_id: int,
    worker_id: int,
    token: Any,
    payload: bytes = b"gradients",
    *,
    images: int = IMAGES_PER_UNIT,
) -> dict[str, Any] | None:
    """One ``submit_result`` call; the row (unit_id) when accepted, None when refused."""
    return db.fetch_one(
        "submit_result",
        run_id=run_id,
        worker_id=worker_id,
        token=token,
        images=images,
        payload=payload,
        device_state=None,
        compute_seconds=0.01,
    )


def tiny_models() -> tuple[Generator, Discriminator]:
    """Fresh networks of the tiny model."""
    return Generator(TINY_MODEL), Discriminator(TINY_MODEL)


def random_result(
    generator: torch.nn.Module,
    discriminator: torch.nn.Module,
    *,
    images: int = IMAGES_PER_UNIT,
    seed: int = 0,
) -> UnitResult:
    """An honest-looking result: small random gradients in ``.grad``, the networks' buffers."""
    gen = torch.Generator().manual_seed(seed)
    for module in (generator, discriminator):
        for p in module.parameters():
            p.grad = 1e-3 * torch.randn(p.shape, generator=gen)
    stats = StepStats(
        images=images,
        d_loss_sum=1.3 * images,
        g_loss_sum=0.7 * images,
        d_real_sum=0.5 * images,
        d_fake_sum=0.5 * images,
    )
    return collect_gradients(generator, discriminator, stats)


class Raw:
    """A test-only psycopg connection (autocommit, dict rows, search_path=ganfriends)."""

    def __init__(self, url: str) -> None:
        self.conn: psycopg.Connection[dict[str, Any]] = psycopg.connect(
            url, autocommit=True, row_factory=dict_row, options="-c search_path=ganfriends,public"
        )

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()

    def rows(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        """All rows of a statement."""
        return self.conn.execute(sql, params).fetchall()

    def one(self, sql: str, **params: Any) -> dict[str, Any]:
        """The one row of a statement."""
        rows = self.rows(sql, **params)
        assert len(rows) == 1, rows
        return rows[0]

    def scalar(self, sql: str, **params: Any) -> Any:
        """The one value of a one-row, one-column statement."""
        return next(iter(self.one(sql, **params).values()))

    def lease(self, token: Any) -> dict[str, Any]:
        """A lease row, with ``live`` (expires_at > now())."""
        return self.one(
            "SELECT *, expires_at > now() AS live FROM leases WHERE token = %(token)s", token=token
        )

    def unit(self, unit_id: int) -> dict[str, Any]:
        """A work_units row."""
        return self.one("SELECT * FROM work_units WHERE id = %(id)s", id=unit_id)

    def units(self, run_id: int) -> list[dict[str, Any]]:
        """A run's work units in unit order."""
        return self.rows(
            "SELECT * FROM work_units WHERE run_id = %(run_id)s ORDER BY unit_index", run_id=run_id
        )

    def worker(self, worker_id: int) -> dict[str, Any]:
        """A workers row."""
        return self.one("SELECT * FROM workers WHERE id = %(id)s", id=worker_id)

    def count(self, table: str, where: str = "true", **params: Any) -> int:
        """Rows of ``table`` matching ``where``."""
        return int(self.scalar(f"SELECT count(*) FROM {table} WHERE {where}", **params))

    def wait_for_lock_waiters(self, count: int, what: str, timeout: float = 10.0) -> None:
        """Block until ``count`` sessions of this database wait on a lock (or fail: ``what``)."""
        where = "datname = current_database() AND wait_event_type = 'Lock'"

        def waiting() -> bool:
            return self.count("pg_stat_activity", where) >= count

        wait_until(waiting, what, timeout=timeout, interval=0.01)

    def strike(self, run_id: int, worker_id: int, times: int = 3, unit_index: int = 0) -> None:
        """Record ``times`` rejected copies against a worker (strikes towards quarantine)."""
        for _ in range(times):
            self.rows(
                "INSERT INTO rejections (run_id, worker_id, version, unit_index, reason)"
                " VALUES (%(run)s, %(w)s, 0, %(unit)s, 'test') RETURNING id",
                run=run_id,
                w=worker_id,
                unit=unit_index,
            )

    def expire_lease(self, token: Any, seconds_ago: float = 5.0) -> None:
        """Move time for one lease: its expiry goes ``seconds_ago`` into the past (DB clock),
        and its unit's lease_expires_at becomes the latest expiry over its active leases."""
        self.rows(
            "UPDATE leases SET expires_at = now() - make_interval(secs => %(ago)s)"
            " WHERE token = %(token)s RETURNING token",
            token=token,
            ago=seconds_ago,
        )
        self.rows(
            "UPDATE work_units u SET lease_expires_at ="
            " (SELECT max(l.expires_at) FROM leases l WHERE l.unit_id = u.id"
            "  AND l.state = 'active')"
            " WHERE u.id = (SELECT unit_id FROM leases WHERE token = %(token)s) RETURNING u.id",
            token=token,
        )

    def expire_lease_in(self, token: Any, seconds: float) -> None:
        """Make a lease (and its unit) expire ``seconds`` from now (DB clock)."""
        self.rows(
            "UPDATE leases SET expires_at = now() + make_interval(secs => %(s)s)"
            " WHERE token = %(token)s RETURNING token",
            token=token,
            s=seconds,
        )
        self.rows(
            "UPDATE work_units SET lease_expires_at = now() + make_interval(secs => %(s)s)"
            " WHERE id = (SELECT unit_id FROM leases WHERE token = %(token)s) RETURNING id",
            token=token,
            s=seconds,
        )


def claim_until_empty(url: str, run_id: int, worker_id: int, start: Any, out: Any) -> None:
    """Process target (spawn): own Database, wait for the start barrier, then ``claim_unit`` and
    upload, as a worker does, until nothing is left; puts (worker_id, [(unit_index, unit_id),
    ...]) or an error on ``out``."""
    try:
        claims: list[tuple[int, int]] = []
        with Database(url, min_size=1, max_size=1, timeout=10) as db:
            db.fetch_one("server_now")  # connected before the race starts
            start.wait(timeout=120)
            while (row := claim(db, run_id, worker_id)) is not None:
                claims.append((int(row["unit_index"]), int(row["unit_id"])))
                submit(db, run_id, worker_id, row["token"])
        out.put((worker_id, claims))
    except BaseException:
        out.put((worker_id, traceback.format_exc()))
