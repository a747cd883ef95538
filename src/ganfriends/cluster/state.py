"""A class run as the coordinator holds it: models, optimizers and plan, loaded from the database.

``load_run_state`` rebuilds everything from the run's rows — weights and BatchNorm buffers of the
published version, the Adam states stored with it, and the plan — so a restarted coordinator
continues exactly where the last committed update left off, with no flag.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import torch

from ganfriends import rng
from ganfriends.blobs import decode_optimizer_state, encode_optimizer_state
from ganfriends.cluster.payload import encode_weights, load_weights
from ganfriends.cluster.plan import RunPlan
from ganfriends.db import Database, Tx
from ganfriends.errors import GanError
from ganfriends.models import Discriminator, Generator, ModelConfig, build_models
from ganfriends.step import make_optimizers


@dataclass
class RunState:
    """One run's models and optimizers at weights version ``version``."""

    run: dict[str, Any]
    plan: RunPlan
    model_config: ModelConfig
    generator: Generator
    discriminator: Discriminator
    optimizer_g: torch.optim.Adam
    optimizer_d: torch.optim.Adam
    version: int

    @property
    def run_id(self) -> int:
        """The run's database id."""
        return int(self.run["id"])

    @property
    def config(self) -> dict[str, Any]:
        """The run's stored config (nested dict)."""
        return dict(self.run["config"])


def plan_of(run: dict[str, Any]) -> RunPlan:
    """The plan stored in a ``runs`` row."""
    return RunPlan(
        dataset_size=int(run["fingerprint"]["size"]),
        seed=int(run["seed"]),
        images_per_unit=int(run["images_per_unit"]),
        units_per_update=int(run["units_per_update"]),
        micro_batch=int(run["micro_batch"]),
        epochs=int(run["epochs"]),
        max_updates=None if run["max_updates"] is None else int(run["max_updates"]),
    )


def _optimizers(
    generator: Generator, discriminator: Discriminator, config: dict[str, Any]
) -> tuple[torch.optim.Adam, torch.optim.Adam]:
    training = config["training"]
    return make_optimizers(
        generator,
        discriminator,
        float(training["learning_rate"]),
        (float(training["beta1"]), float(training["beta2"])),
    )


def create_run(
    tx: Tx,
    *,
    name: str,
    config: dict[str, Any],
    model_config: ModelConfig,
    fingerprint: dict[str, Any],
    plan: RunPlan,
    lease_seconds: float,
    max_backups: int,
) -> int:
    """Insert a run with its version-0 weights, fresh optimizer states and first units."""
    row = tx.fetch_one(
        "create_run",
        name=name,
        config=json.dumps(config),
        model_config=json.dumps(model_config.to_dict()),
        fingerprint=json.dumps(fingerprint),
        seed=plan.seed,
        epochs=plan.epochs,
        max_updates=plan.max_updates,
        images_per_unit=plan.images_per_unit,
        units_per_update=plan.units_per_update,
        micro_batch=plan.micro_batch,
        units_per_epoch=plan.units_per_epoch,
        total_units=plan.total_units,
        lease_seconds=lease_seconds,
        max_backups=max_backups,
    )
    assert row is not None
    run_id = int(row["id"])
    generator, discriminator = build_models(model_config, seed=rng.derive_seed(plan.seed, rng.INIT))
    optimizer_g, optimizer_d = _optimizers(generator, discriminator, config)
    tx.execute(
        "insert_weights",
        run_id=run_id,
        version=0,
        generator=encode_weights(generator),
        discriminator=encode_weights(discriminator),
    )
    tx.execute(
        "upsert_optimizer_states",
        run_id=run_id,
        version=0,
        generator=encode_optimizer_state(optimizer_g.state_dict()),
        discriminator=encode_optimizer_state(optimizer_d.state_dict()),
    )
    units = plan.units_of_update(0)
    tx.execute(
        "insert_units", run_id=run_id, version=0, first_index=units.start, last_index=units.stop - 1
    )
    return run_id


def load_run_state(db: Database, run_id: int) -> RunState:
    """Rebuild the coordinator's view of a run at its published version."""
    run = db.fetch_one("get_run", run_id=run_id)
    if run is None:
        raise GanError(f"run {run_id} does not exist")
    model_config = ModelConfig.from_dict(run["model_config"])
    generator, discriminator = Generator(model_config), Discriminator(model_config)
    version = int(run["version"])
    weights = db.fetch_one("get_weights", run_id=run_id, version=version)
    states = db.fetch_one("get_optimizer_states", run_id=run_id)
    if weights is None or states is None or int(states["version"]) != version:
        raise GanError(
            f"run {run_id} is inconsistent: version {version} has no weights or optimizer state"
        )
    load_weights(generator, weights["generator"])
    load_weights(discriminator, weights["discriminator"])
    optimizer_g, optimizer_d = _optimizers(generator, discriminator, run["config"])
    optimizer_g.load_state_dict(decode_optimizer_state(states["generator"]))
    optimizer_d.load_state_dict(decode_optimizer_state(states["discriminator"]))
    return RunState(
        run=run,
        plan=plan_of(run),
        model_config=model_config,
        generator=generator,
        discriminator=discriminator,
        optimizer_g=optimizer_g,
        optimizer_d=optimizer_d,
        version=version,
    )
