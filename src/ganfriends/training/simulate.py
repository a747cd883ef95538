"""``ganfriends simulate``: a distributed mode in one process, for research.

The same rule code as the class run (``ganfriends.rules``) drives every unit one after another,
with no database: the version loop of ``rules.base`` with an in-memory transport. Each unit starts
from the published weights (as a worker that downloaded them would), per-device states live in a
dict, and the bytes the class transport would move are counted from the tensors that would cross
it. Outputs are train-local's: sample grids, ``history.csv`` (one row per version, with bytes
moved and FID), ``curves.png`` and a checkpoint that ``generate``, ``eval`` and ``--resume`` of
train-local read.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from rich.console import Console

from ganfriends import rng
from ganfriends.config import Config
from ganfriends.data import make_dataset
from ganfriends.device import describe_device, resolve_device
from ganfriends.errors import ConfigError, GanError
from ganfriends.grid import save_grid
from ganfriends.models import build_models, count_parameters
from ganfriends.rules import ServerState, make_rule, plan_from_config
from ganfriends.rules.base import Unit, UnitResult, network_buffers, step_stats, total_stats
from ganfriends.rules.capabilities import (
    PublishesInputs,
    device_moves,
    inputs_of,
    publishes_weights,
)
from ganfriends.rules.screening import HISTORY_VERSIONS, screen_units
from ganfriends.rules.work import UnitStart, Workspace
from ganfriends.signals import graceful_stop
from ganfriends.step import StepStats
from ganfriends.training.checkpoint import save_checkpoint
from ganfriends.training.history import HistoryWriter, plot_curves
from ganfriends.training.local import NUM_SAMPLES, model_config_for, scoring_evaluator
from ganfriends.training.progress import TrainingProgress

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
# What a version's units compute on: the published G and D, inputs, device states.
Published = tuple[
    tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]],
    dict[str, torch.Tensor] | None,
    dict[int, dict[str, torch.Tensor]],
]


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
    """
    console = console or Console(soft_wrap=True)
    training, mode = config.training, config.coordinator.mode
    out_dir = Path(config.local.output_dir)
    latest = out_dir / "checkpoints" / "latest.pt"
    if latest.exists():
        raise ConfigError(f"{out_dir} already holds a run: choose another --output-dir")
    device = resolve_device(config.local.device)
    dataset = make_dataset(
        config.data.dataset,
        path=config.data.dataset_path,
        image_size=training.image_size,
        data_dir=config.data.data_dir,
        download=config.data.download,
    )
    model_config = model_config_for(config, dataset)
    plan = plan_from_config(mode, config, dataset)
    rule = make_rule(mode, plan, config, model_config, dataset)

    # The server's networks stay on the CPU like the coordinator's; the "worker" uses the device.
    generator, discriminator = build_models(model_config, seed=rng.derive_seed(plan.seed, rng.INIT))
    optimizer_g, optimizer_d = rule.server_optimizers(generator, discriminator)
    server = ServerState(generator, discriminator, optimizer_g, optimizer_d)
    worker_g, worker_d = build_models(model_config)
    worker_g, worker_d = worker_g.to(device), worker_d.to(device)
    weights_bytes = tensor_bytes(generator.state_dict()) + tensor_bytes(discriminator.state_dict())
    device_states: dict[int, dict[str, torch.Tensor]] = {}
    # Each version's screening reference, for the next versions' (the coordinator keeps them in
    # the database); never more than screening reads.
    references: list[dict[str, float]] = []
    inputs = inputs_of(rule, server, 0)

    evaluator = scoring_evaluator(config, dataset, device, console)
    fixed_noise = rng.latent_noise(NUM_SAMPLES, model_config.latent_dim, plan.seed, rng.FIXED_NOISE)
    console.print(
        f"[bold]simulate {mode}[/] {dataset.fingerprint().short()} on {describe_device(device)} | "
        f"G {count_parameters(generator):,} params, D {count_parameters(discriminator):,} | "
        f"{plan.describe()}"
    )

    history = HistoryWriter(out_dir / "history.csv", extra_columns=BYTES_COLUMNS)
    samples_dir = out_dir / "samples"
    bytes_moved = 0
    start_time = time.monotonic()

    def write_outputs(tag: str) -> None:
        history.flush()
        generator.eval()
        with torch.no_grad():
            fakes = generator(fixed_noise)
        generator.train()
        save_grid(fakes, samples_dir / f"{tag}.png", nrow=8)
        save_grid(fakes, samples_dir / "latest.png", nrow=8)
        plot_curves(out_dir / "history.csv", out_dir / "curves.png")
        save_checkpoint(
            latest,
            generator=generator,
            discriminator=discriminator,
            optimizer_g=optimizer_g,
            optimizer_d=optimizer_d,
            epoch=int(plan.epochs_done(server.version)),
            step=server.version // per_step,
            images_seen=server.images_seen,
            model_config=model_config,
            run_config=config.to_dict(),
        )

    def result_bytes(version: int) -> int:
        return rule.result_spec(generator, discriminator, version).nbytes

    # An alternating sync step publishes two versions: rows, grids and scores are per step.
    per_step = plan.versions_per_step
    progress = TrainingProgress(console, total_steps=plan.total_versions // per_step)
    phases: list[StepStats] = []
    down = up = 0
    try:
        with graceful_stop() as stop, progress:
            while server.version < plan.total_versions and not stop.requested:
                units = rule.units_of(server.version)
                published = (
                    {k: v.detach().clone() for k, v in generator.state_dict().items()},
                    {k: v.detach().clone() for k, v in discriminator.state_dict().items()},
                )
                if server.version % per_step == 0:
                    phases, down, up = [], 0, 0

                def compute(unit: Unit, version: Published) -> UnitResult:
                    """A worker's unit on the published version; counts the bytes it moves."""
                    nonlocal down, up
                    weights, published_inputs, states = version
                    if publishes_weights(rule):
                        worker_g.load_state_dict(weights[0])
                        worker_d.load_state_dict(weights[1])
                        down += weights_bytes
                    if isinstance(rule, PublishesInputs) and published_inputs is not None:
                        needed = rule.inputs_needed(unit)
                        down += tensor_bytes({name: published_inputs[name] for name in needed})
                    state = states.get(unit.device) if unit.device is not None else None
                    work = Workspace(worker_g, worker_d, dataset, device)
                    result = rule.compute(work, unit, UnitStart(state, published_inputs))
                    down += tensor_bytes(state)
                    up += result_bytes(server.version) + tensor_bytes(result.device_state)
                    return result

                version = (published, inputs, device_states)
                results = [compute(u, version) for u in units]
                if tamper is not None:
                    results = [tamper(u, r) for u, r in zip(units, results, strict=True)]
                who = by_position(units) if students is None else [students(u) for u in units]
                # The class run's screening, so that both runs combine the same tensors.
                buffers = network_buffers(generator, discriminator)  # the published ones
                while True:
                    screening = screen_units(
                        rule, units, results, who, references, config.coordinator.clip_factor,
                        published=buffers, previous_states=device_states,
                    )  # fmt: skip
                    if not screening.refused:
                        break
                    for refused in screening.refused:
                        unit = units[refused.index]
                        progress.note(
                            f"version {server.version}: unit {unit.index} from "
                            f"{who[refused.index]} refused: {refused.reason}"
                        )
                        if who[refused.index].startswith("backup "):
                            raise GanError(f"an untampered copy of unit {unit.index} was refused")
                        results[refused.index] = compute(unit, version)
                        who[refused.index] = f"backup {unit.index}"
                results = screening.results
                for c in screening.clipped:
                    progress.note(
                        f"version {server.version}: unit {units[c.index].index}'s {c.group} norm "
                        f"{c.norm:.3g} clipped to {c.bound:.3g}"
                    )
                references.append(screening.reference)
                del references[:-HISTORY_VERSIONS]
                # States become the devices' only once the version is combined, as in a class run.
                for unit, result in zip(units, results, strict=True):
                    if unit.device is not None and result.device_state is not None:
                        device_states[unit.device] = result.device_state
                rule.combine(server, units, results)
                phases.append(total_stats(results))
                server.version += 1
                moves = device_moves(rule, server.version)
                if moves is not None:  # MD-GAN's swap: device n's state becomes moves[n]'s
                    device_states = {moves[n]: s for n, s in device_states.items()}
                inputs = inputs_of(rule, server, server.version)
                if server.version % per_step:
                    continue  # the rest of the step is still to come
                stats = step_stats(phases)
                step = server.version // per_step
                server.images_seen += stats.images
                bytes_moved += down + up
                row: dict[str, float | int] = {
                    "step": step,
                    "epoch": round(plan.epochs_done(server.version), 4),
                    "images_seen": server.images_seen,
                    "d_loss": stats.d_loss,
                    "g_loss": stats.g_loss,
                    "d_real": stats.d_real,
                    "d_fake": stats.d_fake,
                    "elapsed_s": round(time.monotonic() - start_time, 3),
                    "bytes_down": down,
                    "bytes_up": up,
                }
                if evaluator is not None and step % (config.local.eval_interval or 1) == 0:
                    scores = evaluator.evaluate(generator)
                    row.update({k: v for k, v in scores.items() if k != "num_samples"})
                    progress.note(f"version {server.version}: FID {scores['fid']:.2f}")
                history.append(row)
                progress.update(step, stats)
                if step % config.coordinator.sample_interval == 0:
                    write_outputs(f"version_{server.version:06d}")
    finally:
        # Keep every finished version, Ctrl+C included: combine() is never interrupted midway
        # by a signal (the stop request is only read between versions). A half step (D stepped,
        # G not yet) is never written.
        if server.version > 0 and server.version % per_step == 0:
            write_outputs(f"version_{server.version:06d}")
        history.close()
    stopped = server.version < plan.total_versions
    console.print(
        f"{'stopped' if stopped else 'done'} at version {server.version}/{plan.total_versions}: "
        f"{server.images_seen:,} images, {bytes_moved / 1e6:,.1f} MB would cross the database "
        f"({bytes_moved / max(1, server.images_seen) / 1e3:,.1f} kB per image); "
        f"samples in {samples_dir}, checkpoint {latest}"
    )
    return SimulationResult(
        server.version, server.images_seen, bytes_moved, out_dir, latest, stopped
    )
