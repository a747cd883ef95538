"""Shared set-up of the class benchmarks: an embedded server, a run, a worker and a coordinator."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from ganfriends.classroom.coordinator import Coordinator
from ganfriends.classroom.state import RunState, create_run, load_run_state
from ganfriends.compat import WORKER_VERSION
from ganfriends.config import Config
from ganfriends.db import Database, EmbeddedPostgres, migrate
from ganfriends.models import ModelConfig
from ganfriends.rules import SyncPlan


@contextmanager
def embedded_database(prefix: str) -> Iterator[Database]:
    """A migrated database on a throw-away embedded server (stopped and deleted afterwards)."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        server = EmbeddedPostgres(Path(tmp) / "pg")
        info = server.start()
        try:
            with Database(info.local_url()) as db:
                migrate(db)
                yield db
        finally:
            server.stop()


@dataclass
class BenchRun:
    """A run with one registered worker and a quiet in-process coordinator."""

    run_id: int
    worker_id: int
    coordinator: Coordinator
    state: RunState


def start_run(db: Database, model: ModelConfig, plan: SyncPlan, config: Config) -> BenchRun:
    """Create a run on fake data of the plan's size and register one worker."""
    fingerprint = {"name": "bench", "size": plan.dataset_size, "image_size": model.image_size,
                   "channels": model.channels, "digest": "0" * 64}  # fmt: skip
    with db.transaction() as tx:
        run_id = create_run(
            tx, name="bench", mode="sync", config=config.to_dict(), model_config=model,
            fingerprint=fingerprint, plan=plan, lease_seconds=600, max_backups=0,
            max_units_per_claim=4,
        )  # fmt: skip
    row = db.fetch_one(
        "register_worker", run_id=run_id, name="bench", hostname="bench", device="cpu",
        gpu_name=None, gpu_vram_gb=None, cpu_cores=None, ram_gb=None, version=WORKER_VERSION,
    )  # fmt: skip
    assert row is not None
    state = load_run_state(db, run_id)
    return BenchRun(
        run_id=run_id,
        worker_id=int(row["id"]),
        coordinator=Coordinator(db, config, console=Console(quiet=True)),
        state=state,
    )
