"""``ganfriends simulate``: a distributed mode in one process, for research.

The same rule code as the class run (``ganfriends.rules``) drives every unit one after another,
with no database: the version loop of ``rules.base`` with an in-memory transport. Each unit starts
from the published weights (as a worker that downloaded them would), per-device states live in a
dict, and the bytes the class transport would move are counted from the tensors that would cross
it. What follows a version's results is the class run's own step (``rules/advance.py``:
screening, the rule's combine, the non-finite guard, the rule's history). Outputs go through the
writer every run uses (``training/writer.py``): sample grids, ``history.csv`` (one row per step,
with bytes moved and FID), ``curves.png`` and a checkpoint that ``generate``, ``eval`` and
``--resume`` of train-local read.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from rich.console import Console

from ganfriends import rng
from ganfriends.compression import Compressed, download_copy, transfer
from ganfriends.config import Config
from ganfriends.device import describe_device, resolve_device
from ganfriends.errors import ConfigError, GanError
from ganfriends.models import build_models, count_parameters
from ganfriends.rules import ServerState, make_rule, plan_from_config
from ganfriends.rules.advance import (
    Advance,
    DeviceState,
    NonFiniteStrikes,
    NonFiniteUpdate,
    Update,
    merge_records,
)
from ganfriends.rules.base import Unit, UnitResult, UpdateRecord
from ganfriends.rules.capabilities import PublishesInputs, inputs_of, publishes_weights
from ganfriends.rules.screening import Screening
from ganfriends.rules.work import Inputs, UnitStart, Workspace
from ganfriends.signals import graceful_stop
from ganfriends.tracking import open_log
from ganfriends.training.history import HistoryWriter
from ganfriends.training.progress import TrainingProgress
from ganfriends.training.setup import model_config_for, open_dataset, scoring_evaluator
from ganfriends.training.writer import RunWriter

BYTES_COLUMNS = ("bytes_down", "bytes_up")


def tensor_bytes(tensors: dict[str, torch.Tensor] | None) -> int:
    """Raw bytes of a set of tensors (what a safetensors blob of them carries, less its header)."""
    if not tensors:
        return 0
    return sum(t.numel() * t.element_size() for t in tensors.values())


@dataclass
class SimulationResult:
    """Where a simulation stopped."""

    version: int
    images_seen: int
    bytes_moved: int
    output_dir: Path
    latest_checkpoint: Path
    stopped_early: bool


Tamper = Callable[[Unit, UnitResult], UnitResult]
Students = Callable[[Unit], str]


@dataclass(frozen=True)
class Published:
    """What a version's units compute on: the published G and D, inputs, device states."""

    generator: dict[str, torch.Tensor]
    discriminator: dict[str, torch.Tensor]
    inputs: Inputs | None
    states: dict[int, DeviceState]
    # What a worker downloads of G and D (--download-dtype): the wire, and the values it loads.
    downloads: tuple[Compressed, Compressed]


def changed_bytes(
    held: tuple[dict[str, torch.Tensor], ...],
    published: tuple[dict[str, torch.Tensor], ...],
    sent: tuple[Compressed, ...],
) -> int:
    """Bytes of the networks of ``published`` that differ from ``held`` (all when none held),
    in the form they are ``sent``: what a worker downloads, as
    :class:`ganfriends.classroom.unit_work.PublishedWeights` does."""
    changed = [
        not held or any(not torch.equal(old[name], t) for name, t in new.items())
        for old, new in zip(held or published, published, strict=True)
    ]
    return sum(
        tensor_bytes(download.values if download.wire is None else download.wire)
        for download, differs in zip(sent, changed, strict=True)
        if differs
    )


def by_position(units: list[Unit]) -> list[str]:
    """The default students: one per unit of a version (a class of K who each take one)."""
    return [f"student {j}" for j in range(len(units))]


def simulate(
    config: Config,
    *,
    console: Console | None = None,
    tamper: Tamper | None = None,
    students: Students | None = None,
) -> SimulationResult:
    """Run ``config.coordinator.mode``'s rule in this process, as ``config`` says.

    ``tamper`` (research, tests): called on each unit's result before it is combined, as a
    hostile worker would change it (``benchmarks/robustness.py`` measures the screening with
    it); ``students`` names who computed each unit (default: a student per unit of a version).
    Screening is the class run's (``rules/screening.py``): a result it refuses is computed
    again, untampered, by a backup student — as the class queue gives a refused unit to
    another worker — so a run whose every tampered result is refused equals the honest run.
    A combined update that is not finite is published by neither: the version is computed again
    from the last good one, and the run stops after three in a row, as a class run does.
    """
    sim = Simulation(config, console or Console(soft_wrap=True), tamper, students)
    writer = sim.open_writer()
    try:
        sim.loop(writer)
    finally:
        # Keep every finished version, Ctrl+C included: combine() is never interrupted midway
        # by a signal (the stop request is only read between versions). A half step (D stepped,
        # G not yet) is never written.
        if sim.server.version > 0 and sim.server.version % sim.plan.versions_per_step == 0:
            sim.write(writer)
        writer.close()
    return sim.report(writer)


class Simulation:
    """A class run's rule driven in one process: the in-memory transport."""

    def __init__(
        self, config: Config, console: Console, tamper: Tamper | None, students: Students | None
    ) -> None:
        self.config, self.console, self.tamper, self.students = config, console, tamper, students
        training, mode = config.training, config.coordinator.mode
        self.out_dir = Path(config.local.output_dir)
        if (self.out_dir / "checkpoints" / "latest.pt").exists():
            raise ConfigError(f"{self.out_dir} already holds a run: choose another --output-dir")
        self.device = resolve_device(config.local.device)
        self.dataset = open_dataset(config.data, config.data.dataset, training.image_size)
        self.model_config = model_config_for(config, self.dataset)
        self.plan = plan_from_config(mode, config, self.dataset)
        self.rule = make_rule(mode, self.plan, config, self.model_config, self.dataset)
        self.advance = Advance(self.rule, config.coordinator.clip_factor)

        # The server's networks stay on the CPU like the coordinator's; the "worker" uses the
        # device.
        seed = rng.derive_seed(self.plan.seed, rng.INIT)
        generator, discriminator = build_models(self.model_config, seed=seed)
        self.server = ServerState(
            generator, discriminator, *self.rule.server_optimizers(generator, discriminator)
        )
        worker_g, worker_d = build_models(self.model_config)
        self.worker_g, self.worker_d = worker_g.to(self.device), worker_d.to(self.device)
        # What each unit's worker downloads: the networks its version changed (a worker of a
        # class of K, each taking one unit per version, holds the version before).
        self.held: tuple[dict[str, torch.Tensor], ...] = ()
        self.downloads = transfer(config.coordinator.download_dtype)
        self.download_bytes = 0
        self.device_states: dict[int, DeviceState] = {}
        self.inputs = inputs_of(self.rule, self.server, 0)
        self.bytes_moved = self.down = self.up = 0
        console.print(
            f"[bold]simulate {mode}[/] {self.dataset.fingerprint().short()} on "
            f"{describe_device(self.device)} | G {count_parameters(generator):,} params, "
            f"D {count_parameters(discriminator):,} | {self.plan.describe()}"
        )

    def open_writer(self) -> RunWriter:
        """train-local's outputs, with the bytes each step moved (no Hub: a simulation is
        research, never pushed over a class's model)."""
        config, out_dir = self.config, self.out_dir
        training, local = config.training, config.local
        evaluator = None
        if local.eval_interval is not None:
            evaluator = scoring_evaluator(
                config, dataset=config.data.dataset, image_size=self.dataset.image_size,
                seed=training.seed, device=self.device, console=self.console,
            )  # fmt: skip
        return RunWriter(
            out_dir, self.server, self.model_config, config.to_dict(), self.plan.seed,
            f"simulate {config.coordinator.mode}", config.data.dataset,
            log=open_log(config.tracking, out_dir, out_dir.name),
            history=HistoryWriter(out_dir / "history.csv", extra_columns=BYTES_COLUMNS),
            evaluator=evaluator, eval_interval=local.eval_interval,
        )  # fmt: skip

    # ------------------------------------------------------------------ the version loop

    def loop(self, writer: RunWriter) -> None:
        """Versions until the plan's last or a stop; a history row per optimizer step."""
        plan, server = self.plan, self.server
        # An alternating sync step publishes two versions: rows, grids and scores are per step.
        per_step = plan.versions_per_step
        progress = TrainingProgress(self.console, total_steps=plan.total_versions // per_step)
        strikes = NonFiniteStrikes()
        records: list[UpdateRecord] = []
        start_time = time.monotonic()
        with graceful_stop() as stop, progress:
            while server.version < plan.total_versions and not stop.requested:
                if server.version % per_step == 0:
                    records, self.down, self.up = [], 0, 0
                try:
                    update = self.next_version(progress)
                except NonFiniteUpdate as exc:
                    progress.note(f"[red]{exc}: nothing published[/]")
                    strikes.failed(exc, server.version)
                    continue
                strikes.passed()
                records.append(update.record)
                if server.version % per_step == 0:
                    self.step_done(writer, merge_records(records), progress, start_time)

    def next_version(self, progress: TrainingProgress) -> Update:
        """The current version's units computed, screened and combined: the next version."""
        server = self.server
        units = self.rule.units_of(server.version)
        networks, seed = (server.generator, server.discriminator), self.plan.seed
        states = [{k: v.detach().clone() for k, v in n.state_dict().items()} for n in networks]
        # Workers start from the copy they download (float32: the weights themselves).
        g_copy, d_copy = (
            download_copy(state, {n for n, _ in net.named_parameters()}, self.downloads, seed)
            for state, net in zip(states, networks, strict=True)
        )
        published = Published(
            states[0], states[1], self.inputs, self.device_states, (g_copy, d_copy)
        )
        self.download_bytes = changed_bytes(
            self.held, (published.generator, published.discriminator), published.downloads
        )
        self.held = (published.generator, published.discriminator)
        optimizers = copy.deepcopy(
            (server.optimizer_g.state_dict(), server.optimizer_d.state_dict())
        )
        screening = self.screened(units, published, progress)
        try:
            update = self.advance.combine(server, units, screening)
        except NonFiniteUpdate:
            # Back to the last good version (a coordinator reloads it from its database).
            server.generator.load_state_dict(published.generator)
            server.discriminator.load_state_dict(published.discriminator)
            server.optimizer_g.load_state_dict(optimizers[0])
            server.optimizer_d.load_state_dict(optimizers[1])
            raise
        self.advance.published(server, update)
        # States become the devices' only once the version is combined, as in a class run.
        self.device_states = update.device_states(self.device_states)
        self.inputs = update.inputs
        return update

    def screened(
        self, units: list[Unit], published: Published, progress: TrainingProgress
    ) -> Screening:
        """The version's results as screening accepts them: a refused one is computed again,
        untampered, by a backup student (the class queue gives it to another worker)."""
        results = [self.compute(u, published) for u in units]
        if self.tamper is not None:
            results = [self.tamper(u, r) for u, r in zip(units, results, strict=True)]
        who = by_position(units) if self.students is None else [self.students(u) for u in units]
        version = self.server.version
        while True:
            screening = self.advance.screen(self.server, units, results, who, published.states)
            if not screening.refused:
                break
            for refused in screening.refused:
                unit = units[refused.index]
                progress.note(
                    f"version {version}: unit {unit.index} from {who[refused.index]} refused: "
                    f"{refused.reason}"
                )
                if who[refused.index].startswith("backup "):
                    raise GanError(f"an untampered copy of unit {unit.index} was refused")
                results[refused.index] = self.compute(unit, published)
                who[refused.index] = f"backup {unit.index}"
        for c in screening.clipped:
            progress.note(
                f"version {version}: unit {units[c.index].index}'s {c.group} norm "
                f"{c.norm:.3g} clipped to {c.bound:.3g}"
            )
        return screening

    def compute(self, unit: Unit, published: Published) -> UnitResult:
        """A worker's unit on the published version; counts the bytes it moves."""
        rule = self.rule
        if publishes_weights(rule):
            self.worker_g.load_state_dict(published.downloads[0].values)
            self.worker_d.load_state_dict(published.downloads[1].values)
            self.down += self.download_bytes
        if isinstance(rule, PublishesInputs) and published.inputs is not None:
            needed = rule.inputs_needed(unit)
            self.down += tensor_bytes({name: published.inputs[name] for name in needed})
        state = published.states.get(unit.device) if unit.device is not None else None
        work = Workspace(self.worker_g, self.worker_d, self.dataset, self.device)
        result = rule.compute(work, unit, UnitStart(state, published.inputs))
        self.down += tensor_bytes(state)
        server = self.server
        spec = rule.result_spec(server.generator, server.discriminator, server.version)
        self.up += spec.nbytes + tensor_bytes(result.device_state)
        return result

    # ------------------------------------------------------------------ outputs

    def step_done(
        self, writer: RunWriter, record: UpdateRecord, progress: TrainingProgress, start: float
    ) -> None:
        """A whole optimizer step: its history row (scored when due), grid and checkpoint."""
        server, plan = self.server, self.plan
        step = server.version // plan.versions_per_step
        self.bytes_moved += self.down + self.up
        scores = writer.record({
            "step": step,
            "epoch": round(plan.epochs_done(server.version), 4),
            "images_seen": server.images_seen,
            "d_loss": record.d_loss,
            "g_loss": record.g_loss,
            "d_real": record.d_real,
            "d_fake": record.d_fake,
            "elapsed_s": round(time.monotonic() - start, 3),
            "bytes_down": self.down,
            "bytes_up": self.up,
        })  # fmt: skip
        if scores:
            progress.note(f"version {server.version}: FID {scores['fid']:.2f}")
        progress.update(step, record)
        if step % self.config.coordinator.sample_interval == 0:
            self.write(writer)

    def write(self, writer: RunWriter) -> None:
        """The version's grid and ``latest.pt``, named by version as a class run's are."""
        version = self.server.version
        writer.samples(f"version_{version:06d}")
        writer.checkpoint(epoch=int(self.plan.epochs_done(version)))

    def report(self, writer: RunWriter) -> SimulationResult:
        """Say where the simulation stopped and what crossing the database would have cost."""
        server, plan, moved = self.server, self.plan, self.bytes_moved
        stopped = server.version < plan.total_versions
        self.console.print(
            f"{'stopped' if stopped else 'done'} at version {server.version}/"
            f"{plan.total_versions}: {server.images_seen:,} images, {moved / 1e6:,.1f} MB would "
            f"cross the database ({moved / max(1, server.images_seen) / 1e3:,.1f} kB per image); "
            f"samples in {self.out_dir / 'samples'}, checkpoint {writer.latest_checkpoint}"
        )
        return SimulationResult(
            server.version, server.images_seen, moved, self.out_dir, writer.latest_checkpoint,
            stopped,
        )  # fmt: skip
