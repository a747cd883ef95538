"""The coordinator: a synchronous parameter server whose only channel is PostgreSQL.

For update v it waits until the K units of v are done (each computed on weights version v),
validates every result, averages them in unit order weighted by images, takes one Adam step for G
and D, and then — in ONE transaction — credits the workers, deletes the consumed units and
results, publishes weights v+1 with the Adam states that go with them, records the losses, advances
the run and queues the units of v+1. A crash at any instant therefore leaves v or v+1, never a mix,
and a restarted coordinator resumes from the database with no flag: results not yet consumed are
still there and give the same v+1 again.

BatchNorm: workers report the buffers each network ended its unit with; the next version's running
statistics are their image-weighted average (``aggregate.merge_buffers``), so eval-mode samples use
statistics of real training batches.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from rich.console import Console

from ganfriends import rng
from ganfriends.aggregate import Contribution, merge_buffers, weighted_mean
from ganfriends.blobs import InvalidBlob, TensorSpec, encode_optimizer_state
from ganfriends.cluster.payload import UnitResult, decode_result, encode_weights, result_spec
from ganfriends.cluster.plan import RunPlan
from ganfriends.cluster.state import RunState, create_run, load_run_state
from ganfriends.config import Config
from ganfriends.data import make_dataset
from ganfriends.db import Database, DatabaseUnavailable
from ganfriends.errors import GanError
from ganfriends.grid import save_grid
from ganfriends.models import ModelConfig
from ganfriends.signals import StopRequest
from ganfriends.step import StepStats
from ganfriends.training.checkpoint import save_checkpoint

if TYPE_CHECKING:
    from ganfriends.evaluation import Evaluator

NUM_SAMPLES = 64  # images per sample grid


class RunLocked(GanError):
    """Another coordinator is already running this run."""


@dataclass
class CoordinatorResult:
    """Where the coordinator stopped."""

    run_id: int
    version: int
    complete: bool


def _stats_of(results: list[UnitResult]) -> StepStats:
    total = StepStats()
    for r in results:
        total += r.stats
    return total


class Coordinator:
    """Runs (or resumes) the latest class run in a database."""

    def __init__(self, db: Database, config: Config, *, console: Console | None = None) -> None:
        self.db = db
        self.config = config
        self.console = console or Console(soft_wrap=True)
        self.output_dir = Path(config.coordinator.output_dir)

    # ------------------------------------------------------------------ set-up

    def open_run(self) -> int:
        """The id of the run to drive: the latest running one, else a new one from the config."""
        row = self.db.fetch_one("latest_running_run")
        if row is not None and not self.config.coordinator.new_run:
            self.console.print(
                f"resuming run {row['id']} ({row['name']}) at version {row['version']}"
            )
            return int(row["id"])
        if row is not None:
            self.db.execute("stop_run", run_id=row["id"])
            self.console.print(f"stopped run {row['id']}; starting a new one")
        return self._create_run()

    def _create_run(self) -> int:
        cfg = self.config
        dataset = make_dataset(
            cfg.data.dataset,
            path=cfg.data.dataset_path,
            image_size=cfg.training.image_size,
            data_dir=cfg.data.data_dir,
            download=cfg.data.download,
        )
        fingerprint = dataset.fingerprint()
        model_config = ModelConfig(
            image_size=dataset.image_size,
            channels=dataset.channels,
            latent_dim=cfg.training.latent_dim,
            g_features=cfg.training.g_features,
            d_features=cfg.training.d_features,
        )
        try:
            plan = RunPlan(
                dataset_size=len(dataset),
                seed=cfg.training.seed,
                images_per_unit=cfg.training.images_per_work_unit,
                units_per_update=cfg.training.workunits_per_update,
                micro_batch=cfg.training.micro_batch,
                epochs=cfg.training.epochs,
                max_updates=cfg.coordinator.max_iterations,
            )
        except ValueError as exc:
            raise GanError(str(exc)) from exc
        with self.db.transaction() as tx:
            run_id = create_run(
                tx,
                name=cfg.coordinator.run_name or f"{fingerprint.name}-seed{cfg.training.seed}",
                config=cfg.to_dict(),
                model_config=model_config,
                fingerprint=fingerprint.to_dict(),
                plan=plan,
                lease_seconds=cfg.training.work_unit_timeout,
                max_backups=cfg.coordinator.max_backups,
            )
        self.console.print(
            f"new run {run_id}: {fingerprint.short()}, {plan.units_per_epoch} units of "
            f"{plan.images_per_unit} images per epoch, {plan.units_per_update} units per update, "
            f"{plan.total_updates} updates"
        )
        return run_id

    # ------------------------------------------------------------------ the loop

    def run(self, stop: StopRequest | None = None) -> CoordinatorResult:
        """Drive the run until it completes or ``stop`` is requested."""
        stop = stop or StopRequest()
        run_id = self.open_run()
        with self.db.advisory_lock("lock_run", "unlock_run", run_id=run_id) as locked:
            if not locked:
                raise RunLocked(f"another coordinator is already running run {run_id}")
            state = load_run_state(self.db, run_id)
            return self._loop(state, stop)

    def _loop(self, state: RunState, stop: StopRequest) -> CoordinatorResult:
        spec = result_spec(state.generator, state.discriminator)
        fixed_noise = rng.latent_noise(
            NUM_SAMPLES, state.model_config.latent_dim, state.plan.seed, rng.FIXED_NOISE
        )
        interval = self.config.coordinator.sample_interval
        eval_interval = self.config.coordinator.eval_interval
        evaluator = self._make_evaluator(state) if eval_interval else None
        published_at = time.monotonic()
        while state.version < state.plan.total_updates and not stop.requested:
            results = self._wait_for_results(state, spec, stop)
            if results is None:
                break
            wait_seconds = time.monotonic() - published_at
            try:
                self._apply_update(state, results, wait_seconds)
            except DatabaseUnavailable:
                # The commit may or may not have happened: rebuild from what the database holds.
                self.console.print("[yellow]database unreachable during an update; reloading[/]")
                state = self._reload(state.run_id, stop)
                continue
            published_at = time.monotonic()
            if state.version % interval == 0 or state.version == state.plan.total_updates:
                self._write_outputs(state, fixed_noise)
            if evaluator is not None and eval_interval and state.version % eval_interval == 0:
                self._evaluate(state, evaluator)
        complete = state.version >= state.plan.total_updates
        if complete:
            self.console.print(f"run {state.run_id} complete at version {state.version}")
        else:
            self._write_outputs(state, fixed_noise)
            self.console.print(
                f"coordinator stopped at version {state.version}; run it again to resume"
            )
        return CoordinatorResult(state.run_id, state.version, complete)

    def _reload(self, run_id: int, stop: StopRequest) -> RunState:
        delay = 0.5
        while True:
            try:
                return load_run_state(self.db, run_id)
            except DatabaseUnavailable:
                if stop.event.wait(delay):
                    raise
                delay = min(delay * 2, 30.0)

    def _wait_for_results(
        self, state: RunState, spec: TensorSpec, stop: StopRequest
    ) -> list[tuple[int, UnitResult]] | None:
        """Poll until every unit of this version has a valid result; None if asked to stop."""
        poll = self.config.coordinator.poll_interval
        units = state.plan.units_of_update(state.version)
        while not stop.requested:
            try:
                counts = self.db.fetch_one(
                    "count_units", run_id=state.run_id, version=state.version
                )
            except DatabaseUnavailable as exc:
                self.console.print(f"[yellow]database unreachable ({exc}); retrying[/]")
                stop.event.wait(min(5.0, poll * 4))
                continue
            assert counts is not None
            if counts["total"] == 0:
                raise GanError(
                    f"run {state.run_id} has no work units for version {state.version}: "
                    "the database was changed under the coordinator"
                )
            if counts["done"] == counts["total"]:
                valid = self._validated_results(state, spec)
                if valid is not None and len(valid) == len(units):
                    return valid
                continue  # a result was rejected and its unit requeued: keep waiting
            stop.event.wait(poll)
        return None

    def _validated_results(
        self, state: RunState, spec: TensorSpec
    ) -> list[tuple[int, UnitResult]] | None:
        """(worker id, result) of every unit in unit order; None after rejecting (and requeueing)
        bad ones."""
        rows = self.db.fetch_all("fetch_results", run_id=state.run_id, version=state.version)
        results: list[tuple[int, UnitResult]] = []
        rejected = False
        for row in rows:
            try:
                result = decode_result(row["payload"], spec, max_images=state.plan.images_per_unit)
                if result.images != row["images"]:
                    # The leaderboard credits the row's count: it must be the validated one.
                    raise InvalidBlob(
                        f"upload claims {row['images']} images, its blob {result.images}"
                    )
                results.append((int(row["worker_id"]), result))
            except InvalidBlob as exc:
                rejected = True
                self.db.execute("reject_result", unit_id=row["unit_id"], reason=str(exc))
                self.console.print(
                    f"[red]rejected[/] unit {row['unit_index']} "
                    f"from worker {row['worker_id']}: {exc}"
                )
        return None if rejected else results

    def _apply_update(
        self, state: RunState, contributions: list[tuple[int, UnitResult]], wait_seconds: float
    ) -> None:
        """Aggregate, step, and publish v+1 in one transaction."""
        results = [result for _, result in contributions]
        contributors = len({worker for worker, _ in contributions})
        gradients = weighted_mean([Contribution(r.images, r.gradients) for r in results])
        buffers = merge_buffers([Contribution(r.images, r.buffers) for r in results])
        for prefix, model, optimizer in (
            ("g.", state.generator, state.optimizer_g),
            ("d.", state.discriminator, state.optimizer_d),
        ):
            optimizer.zero_grad(set_to_none=True)
            for name, p in model.named_parameters():
                p.grad = gradients[prefix + name]
            optimizer.step()
        for prefix, model in (("gbuf.", state.generator), ("dbuf.", state.discriminator)):
            model.load_state_dict(
                {n: buffers[prefix + n] for n, _ in model.named_buffers()}, strict=False
            )

        stats = _stats_of(results)
        new_version = state.version + 1
        plan = state.plan
        next_units = plan.units_of_update(new_version)
        complete = len(next_units) == 0
        keep = self.config.coordinator
        with self.db.transaction() as tx:
            tx.execute("credit_workers", run_id=state.run_id, version=state.version)
            tx.execute("delete_version_units", run_id=state.run_id, version=state.version)
            tx.execute(
                "insert_weights",
                run_id=state.run_id,
                version=new_version,
                generator=encode_weights(state.generator),
                discriminator=encode_weights(state.discriminator),
            )
            tx.execute(
                "upsert_optimizer_states",
                run_id=state.run_id,
                version=new_version,
                generator=encode_optimizer_state(state.optimizer_g.state_dict()),
                discriminator=encode_optimizer_state(state.optimizer_d.state_dict()),
            )
            images_seen = int(state.run["images_seen"]) + stats.images
            tx.execute(
                "insert_update",
                run_id=state.run_id,
                version=new_version,
                epoch=plan.epochs_done(new_version),
                images=stats.images,
                images_seen=images_seen,
                d_loss=stats.d_loss,
                g_loss=stats.g_loss,
                d_real=stats.d_real,
                d_fake=stats.d_fake,
                contributors=contributors,
                wait_seconds=wait_seconds,
            )
            advanced = tx.execute(
                "advance_run",
                run_id=state.run_id,
                new_version=new_version,
                images=stats.images,
                complete=complete,
            )
            if advanced != 1:
                raise GanError(f"run {state.run_id} was advanced by someone else; stopping")
            if not complete:
                tx.execute(
                    "insert_units",
                    run_id=state.run_id,
                    version=new_version,
                    first_index=next_units.start,
                    last_index=next_units.stop - 1,
                )
            tx.execute(
                "prune_weights",
                run_id=state.run_id,
                newest=new_version,
                keep_last=keep.keep_last_versions,
                keep_every=keep.keep_every_versions,
            )
        state.version = new_version
        state.run["images_seen"] = images_seen
        state.run["version"] = new_version
        # The update left tens of MB of dead blobs: reclaim them now, while the workers compute
        # v+1 (see migration 0002). Storage then stays flat instead of growing per update.
        self.db.execute("vacuum_blob_tables")
        self.console.print(
            f"version {new_version}/{plan.total_updates} epoch {plan.epochs_done(new_version):.2f} "
            f"D {stats.d_loss:.3f} G {stats.g_loss:.3f} D(x) {stats.d_real:.2f} "
            f"D(G(z)) {stats.d_fake:.2f} ({contributors} workers, {wait_seconds:.1f}s)"
        )

    def _make_evaluator(self, state: RunState) -> Evaluator:
        """Scores the run's generator against its dataset's held-out images (prepared once)."""
        from ganfriends.evaluation import Evaluator

        return Evaluator.for_dataset(
            str(state.config["data"]["dataset"]),
            dataset_path=self.config.data.dataset_path,
            data_dir=self.config.data.data_dir,
            image_size=state.model_config.image_size,
            num_samples=self.config.training.eval_samples,
            seed=state.plan.seed,
            device="cpu",
            progress=self.console.print,
        )

    def _evaluate(self, state: RunState, evaluator: Evaluator) -> None:
        """Score the current version and record it in the database."""
        scores = evaluator.evaluate(state.generator)
        self.db.execute(
            "insert_evaluation",
            run_id=state.run_id,
            version=state.version,
            images_seen=int(state.run["images_seen"]),
            fid=scores["fid"],
            kid_mean=scores["kid_mean"],
            kid_std=scores["kid_std"],
            precision=scores["precision"],
            recall=scores["recall"],
            num_samples=int(scores["num_samples"]),
        )
        self.console.print(
            f"version {state.version}: FID {scores['fid']:.2f}, KID {scores['kid_mean']:.3f}, "
            f"precision {scores['precision']:.2f}, recall {scores['recall']:.2f}"
        )

    def _write_outputs(self, state: RunState, fixed_noise: torch.Tensor) -> None:
        """Sample grid and a train-local-format checkpoint."""
        generator = state.generator
        generator.eval()
        with torch.no_grad():
            fakes = generator(fixed_noise)
        generator.train()
        samples = self.output_dir / "samples"
        grid = save_grid(fakes, samples / f"version_{state.version:06d}.png", nrow=8)
        save_grid(fakes, samples / "latest.png", nrow=8)
        try:
            # The same PNG in the database: the dashboard runs on any machine that reaches it.
            self.db.execute(
                "insert_sample", run_id=state.run_id, version=state.version, png=grid.read_bytes()
            )
        except GanError as exc:  # a DatabaseError: a grid the dashboard misses must not stop us
            self.console.print(f"[yellow]sample grid not stored in the database: {exc}[/]")
        save_checkpoint(
            self.output_dir / "checkpoints" / "latest.pt",
            generator=state.generator,
            discriminator=state.discriminator,
            optimizer_g=state.optimizer_g,
            optimizer_d=state.optimizer_d,
            epoch=int(state.plan.epochs_done(state.version)),
            step=state.version,
            images_seen=int(state.run["images_seen"]),
            model_config=state.model_config,
            run_config=state.config,
        )
