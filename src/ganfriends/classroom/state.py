"""A class run as the coordinator holds it: the run row, its rule, and the server state.

``load_run_state`` rebuilds everything from the run's rows — weights and BatchNorm buffers of the
published version, the optimizer states stored with it, and the plan — so a restarted coordinator
continues exactly where the last committed update left off, with no flag.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from torch import nn

from ganfriends import rng
from ganfriends.blobs import decode_optimizer_state, encode_optimizer_state
from ganfriends.classroom import queue
from ganfriends.classroom.payload import (
    encode_download,
    encode_inputs,
    encode_weights,
    load_weights,
)
from ganfriends.classroom.queue import Blobs, Run
from ganfriends.compression import Transfer, transfer
from ganfriends.config import Config
from ganfriends.data import ImageDataset
from ganfriends.db import Database, Tx
from ganfriends.errors import GanError
from ganfriends.models import ModelConfig, build_models
from ganfriends.rules import Plan, Rule, ServerState, make_rule
from ganfriends.rules.capabilities import device_state_spec, inputs_of
from ganfriends.rules.registry import SHARED_RUN_DEFINING, stored_mode
from ganfriends.rules.screening import HISTORY_VERSIONS

# Versions whose screening references a coordinator remembers.
NORM_HISTORY = HISTORY_VERSIONS


@dataclass
class RunState:
    """One run's row, rule and server state at the published version."""

    run: Run
    rule: Rule
    server: ServerState
    # Screening's memory: the per-group reference norms recorded by the latest updates, oldest
    # first (at most NORM_HISTORY), so that a round's own uploads never set their bound alone.
    norm_history: list[dict[str, float]] = field(default_factory=list)

    @property
    def run_id(self) -> int:
        """The run's database id."""
        return self.run.id

    @property
    def version(self) -> int:
        """The published version the server state holds."""
        return self.server.version

    @property
    def plan(self) -> Plan:
        """The run's plan."""
        return self.rule.plan

    @property
    def downloads(self) -> Blobs | None:
        """The copies of the published networks that workers download, when the run rounds
        them (``--download-dtype``)."""
        how = transfer(self.run.config.coordinator.download_dtype)
        return download_blobs(self.server, how, self.plan.seed)

    def advanced(self, norms: dict[str, float] | None = None) -> None:
        """Mirror a committed publish of ``server.version`` (and the screening reference it
        recorded) in the cached run row and history."""
        self.run = replace(
            self.run, version=self.server.version, images_seen=self.server.images_seen
        )
        if norms is not None:
            self.norm_history = [*self.norm_history, norms][-NORM_HISTORY:]


def server_blobs(server: ServerState) -> tuple[Blobs, Blobs]:
    """The encoded networks and optimizer states of a server state."""
    return (
        Blobs(encode_weights(server.generator), encode_weights(server.discriminator)),
        Blobs(
            encode_optimizer_state(server.optimizer_g.state_dict()),
            encode_optimizer_state(server.optimizer_d.state_dict()),
        ),
    )


def download_blobs(server: ServerState, how: Transfer, seed: int) -> Blobs | None:
    """The copies of the server's networks that workers download (None for float32)."""
    generator = encode_download(server.generator, how, seed)
    discriminator = encode_download(server.discriminator, how, seed)
    if generator is None or discriminator is None:
        return None
    return Blobs(generator, discriminator)


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
    dataset: ImageDataset | None = None,
    limits: queue.StudentLimits = queue.DEFAULT_LIMITS,
) -> int:
    """Insert a run and publish its version 0: seeded initial weights, fresh optimizer states
    and the first units."""
    run = queue.create_run(
        tx,
        name=name,
        mode=mode,
        plan=plan,
        config=config,
        model_config=model_config,
        fingerprint=fingerprint,
        lease_seconds=lease_seconds,
        max_backups=max_backups,
        max_units_per_claim=max_units_per_claim,
        limits=limits,
    )
    rule = make_rule(mode, plan, run.config, model_config, dataset)
    generator, discriminator = build_models(model_config, seed=rng.derive_seed(plan.seed, rng.INIT))
    optimizer_g, optimizer_d = rule.server_optimizers(generator, discriminator)
    server = ServerState(generator, discriminator, optimizer_g, optimizer_d)
    queue.set_upload_limit(tx, run.id, upload_limit(rule, generator, discriminator))
    inputs = inputs_of(rule, server, 0)  # before encoding: it may move BN statistics
    weights, states = server_blobs(server)
    downloads = download_blobs(server, transfer(run.config.coordinator.download_dtype), plan.seed)
    queue.publish(
        tx,
        run,
        0,
        weights=weights,
        optimizer_states=states,
        downloads=downloads,
        units=rule.units_of(0),
        consumed=None,
        inputs=None if inputs is None else encode_inputs(inputs),
    )
    return run.id


# A safetensors header: per tensor its name, dtype, shape and offsets as JSON (well under 256
# bytes for our names), plus the result's statistics.
HEADER_BYTES_PER_TENSOR = 256
HEADER_BYTES = 4096


def upload_limit(rule: Rule, generator: nn.Module, discriminator: nn.Module) -> int:
    """The most bytes an honest upload of this rule can take: its result and device state."""
    specs = [rule.result_spec(generator, discriminator)]
    state = device_state_spec(rule, generator, discriminator)
    if state is not None:
        specs.append(state)
    return sum(s.nbytes + HEADER_BYTES + HEADER_BYTES_PER_TENSOR * len(s.shapes) for s in specs)


def load_run_state(db: Database, run_id: int, dataset: ImageDataset | None = None) -> RunState:
    """Rebuild the coordinator's view of a run at its published version."""
    run = queue.get_run(db, run_id)
    rule = make_rule(run.mode, run.plan, run.config, run.model_config, dataset)
    generator, discriminator = build_models(run.model_config)
    published = queue.weights(db, run_id, run.version)
    states = queue.optimizer_states(db, run_id)
    if published is None or states is None or states[0] != run.version:
        raise GanError(
            f"run {run_id} is inconsistent: version {run.version} has no weights or optimizer state"
        )
    load_weights(generator, published.generator)
    load_weights(discriminator, published.discriminator)
    optimizer_g, optimizer_d = rule.server_optimizers(generator, discriminator)
    optimizer_g.load_state_dict(decode_optimizer_state(states[1].generator))
    optimizer_d.load_state_dict(decode_optimizer_state(states[1].discriminator))
    server = ServerState(
        generator, discriminator, optimizer_g, optimizer_d, run.version, run.images_seen
    )
    history = queue.recent_norms(db, run.id, server.version, NORM_HISTORY)
    return RunState(run=run, rule=rule, server=server, norm_history=history)


# What a class run fixes when it is created, whatever its mode: its schedule, model, optimizer,
# mode and transport limits. A coordinator resuming the run takes these (and its mode's own
# settings) from the database, whatever it is given now; everything else (output folder,
# sampling, evaluation, polling, screening, retention, paths) is its own.
CLASS_RUN_DEFINING = (*SHARED_RUN_DEFINING, "training", "coordinator.mode",
                      "coordinator.work_unit_timeout", "coordinator.max_backups",
                      "coordinator.max_units_per_claim", "coordinator.max_workers_per_student",
                      "coordinator.max_lease_factor", "coordinator.quarantine_after",
                      "coordinator.run_name")  # fmt: skip
NOT_RUN_DEFINING = frozenset({"training.eval_samples"})


def run_defining(mode: str) -> tuple[str, ...]:
    """The sections and options a class run of ``mode`` fixes when it is created."""
    return (*CLASS_RUN_DEFINING, *stored_mode(mode).settings)


def ignored_on_resume(current: Config, run_config: Config) -> list[str]:
    """The options given now (flag, environment or file) that the resumed run overrides, as
    "--flag 10 (the run's 5)" lines."""
    ignored = []
    defining = run_defining(run_config.coordinator.mode)
    for key, source in current.given.items():
        section, _, name = key.partition(".")
        if key in NOT_RUN_DEFINING or not (section in defining or key in defining):
            continue
        mine = getattr(getattr(current, section), name)
        theirs = getattr(getattr(run_config, section), name)
        if mine != theirs:
            ignored.append(f"{source} {mine} (the run's {theirs})")
    return ignored
