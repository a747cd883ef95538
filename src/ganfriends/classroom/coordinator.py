"""The coordinator: the server side of every mode, whose only channel is PostgreSQL.

For version v it waits until the run's rule says v's units may be combined (sync: all K of them;
federated: all chosen devices, or a quorum after the round timeout), validates the copies that
arrived (``intake``: the first valid copy of each unit counts), lets the rule combine them
(``rules.*.combine``), and then — in ONE transaction (``queue.publish``) — credits the workers,
deletes the consumed units and results, publishes weights v+1 with the optimizer states that go
with them, records the losses, advances the run and queues the units of v+1. A crash at any
instant therefore leaves v or v+1, never a mix, and a restarted coordinator resumes from the
database with no flag: results not yet consumed are still there and give the same v+1 again.

While it waits (``waiting``) it reads and checks each result as it arrives, and makes sure that
it still holds the run's lock (re-taken after a database restart), that the run still runs, and
that no student holds rows of the run in a transaction left open (``watchdog``).

``RunLocked`` and ``RunStopped`` (from ``waiting``) are re-exported here: they are how a
coordinator ends when the run is not, or no longer, its own."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from rich.console import Console
from rich.markup import escape

from ganfriends.classroom import queue
from ganfriends.classroom.intake import Valid, reject_copy
from ganfriends.classroom.outputs import CoordinatorOutputs
from ganfriends.classroom.payload import decode_device_state, encode_inputs
from ganfriends.classroom.queue import Consumed, Retention
from ganfriends.classroom.state import (
    RunState,
    create_run,
    ignored_on_resume,
    load_run_state,
    server_blobs,
    upload_limit,
)
from ganfriends.classroom.waiting import ResultsWaiter, RunLocked, RunStopped
from ganfriends.classroom.watchdog import Watchdog
from ganfriends.config import Config
from ganfriends.data import fingerprint_mismatch
from ganfriends.db import (
    Database,
    DatabaseError,
    DatabaseUnavailable,
    retrying,
)
from ganfriends.db.notifications import Listener
from ganfriends.db.session_lock import SessionLock
from ganfriends.errors import GanError
from ganfriends.rules import MODES, NEEDS_DATASET, plan_from_config
from ganfriends.rules.advance import Advance, NonFiniteStrikes, NonFiniteUpdate
from ganfriends.rules.base import Unit
from ganfriends.rules.capabilities import device_state_spec
from ganfriends.rules.screening import Clipped, Refused
from ganfriends.signals import StopRequest
from ganfriends.training.setup import model_config_for, open_dataset

__all__ = ["Coordinator", "CoordinatorResult", "NonFiniteUpdate", "RunLocked", "RunStopped"]

LOCK_NOT_AVAILABLE = "55P03"  # SQLSTATE of a statement that hit lock_timeout


class ResultsRefused(GanError):
    """Screening refused results of the version (each rejected against its worker, its unit
    back in the queue): nothing was combined; the coordinator waits for other copies."""


@dataclass
class CoordinatorResult:
    """Where the coordinator stopped."""

    run_id: int
    version: int
    complete: bool


class Coordinator:
    """Runs (or resumes) the latest class run in a database."""

    def __init__(self, db: Database, config: Config, *, console: Console | None = None) -> None:
        self.db = db
        self.config = config
        self.console = console or Console(soft_wrap=True)
        self.output_dir = Path(config.coordinator.output_dir)
        self.watchdog = Watchdog(db, self.console)
        self.outputs = CoordinatorOutputs(db, config, self.output_dir, self.console)
        self.waiter = ResultsWaiter(
            db, self.console, self.watchdog, config.coordinator.poll_interval
        )

    # ------------------------------------------------------------------ set-up

    def _create_run(self) -> int:
        cfg = self.config
        mode = cfg.coordinator.mode
        if mode not in MODES:
            raise GanError(f"unknown mode {mode!r}: choose one of {', '.join(MODES)}")
        dataset = open_dataset(cfg.data, cfg.data.dataset, cfg.training.image_size)
        fingerprint = dataset.fingerprint()
        model_config = model_config_for(cfg, dataset)
        plan = plan_from_config(mode, cfg, dataset)
        with self.db.transaction() as tx:
            run_id = create_run(
                tx,
                name=cfg.coordinator.run_name or f"{fingerprint.name}-{mode}-seed{plan.seed}",
                mode=mode,
                plan=plan,
                config=cfg.to_dict(),
                model_config=model_config,
                fingerprint=fingerprint.to_dict(),
                lease_seconds=cfg.coordinator.work_unit_timeout,
                max_backups=cfg.coordinator.max_backups,
                max_units_per_claim=cfg.coordinator.max_units_per_claim,
                dataset=dataset,
                limits=queue.StudentLimits(
                    max_live_workers=cfg.coordinator.max_workers_per_student,
                    max_lease_factor=cfg.coordinator.max_lease_factor,
                    quarantine_after=cfg.coordinator.quarantine_after,
                ),
            )
        self.console.print(f"new run {run_id} ({mode}): {fingerprint.short()}, {plan.describe()}")
        return run_id

    # ------------------------------------------------------------------ the loop

    def run(self, stop: StopRequest | None = None) -> CoordinatorResult:
        """Drive the run until it completes or ``stop`` is requested."""
        stop = stop or StopRequest()
        running_id = queue.latest_running_run_id(self.db)
        if running_id is None:
            return self._drive(self._create_run(), stop)
        with self.db.session_lock("lock_run", "unlock_run", run_id=running_id) as lock:
            if not lock.held:
                raise RunLocked(f"another coordinator is already running run {running_id}")
            if not self.config.coordinator.new_run:
                running = queue.get_run(self.db, running_id)
                name = escape(running.name)
                self.console.print(
                    f"resuming run {running.id} ({name}) at version {running.version}"
                )
                ignored = ignored_on_resume(self.config, running.config)
                if ignored:
                    self.console.print(
                        f"[yellow]the run keeps the settings it was created with; ignored: "
                        f"{escape('; '.join(ignored))} (--new-run starts a run with them)[/]",
                        highlight=False,
                    )
                return self._loop(self._load(running.id), stop, lock)
            # --new-run stops the live run only under its lock: a second terminal's
            # --new-run cannot stop a run another coordinator is driving.
            self.db.execute("stop_run", run_id=running_id)
            self.console.print(f"stopped run {running_id}; starting a new one")
        return self._drive(self._create_run(), stop)

    def _drive(self, run_id: int, stop: StopRequest) -> CoordinatorResult:
        with self.db.session_lock("lock_run", "unlock_run", run_id=run_id) as lock:
            if not lock.held:
                raise RunLocked(f"another coordinator is already running run {run_id}")
            return self._loop(self._load(run_id), stop, lock)

    def _load(self, run_id: int) -> RunState:
        """The run's state; per-device modes also get the run's dataset, checked against it."""
        run = queue.get_run(self.db, run_id)
        dataset = None
        if run.mode in NEEDS_DATASET:
            dataset = open_dataset(
                self.config.data, str(run.fingerprint["name"]), int(run.model_config.image_size)
            )
            reason = fingerprint_mismatch(dataset, run.fingerprint)
            if reason is not None:
                raise GanError(
                    f"{reason} (run {run_id}): point --dataset-path at the data the run was "
                    "created with"
                )
        state = load_run_state(self.db, run_id, dataset)
        # Runs created before the limit existed get it here (idempotent for the others).
        queue.set_upload_limit(
            self.db, run_id, upload_limit(state.rule, state.server.generator,
                                          state.server.discriminator)
        )  # fmt: skip
        return state

    def _loop(self, state: RunState, stop: StopRequest, lock: SessionLock) -> CoordinatorResult:
        self.outputs.open(state)
        try:
            # Woken by each accepted upload (LISTEN/NOTIFY) instead of sleeping out the poll
            # interval.
            wakeups = self.db.listener("listen_results")
            try:
                return self._run_versions(state, stop, lock, wakeups)
            finally:
                wakeups.close()
        finally:
            self.outputs.close()

    def _run_versions(
        self, state: RunState, stop: StopRequest, lock: SessionLock, wakeups: Listener
    ) -> CoordinatorResult:
        interval = self.config.coordinator.sample_interval
        published_at = time.monotonic()
        total = state.plan.total_versions
        strikes = NonFiniteStrikes()
        while state.version < total and not stop.requested:
            results = self.waiter.wait(state, stop, published_at, lock, wakeups)
            if results is None:
                break
            wait_seconds = time.monotonic() - published_at
            try:
                values = self.apply_update(state, results, wait_seconds)
                strikes.passed()
            except ResultsRefused:
                continue  # nothing was combined: wait for the refused units' other copies
            except NonFiniteUpdate as exc:
                # Nothing was published; the in-memory state is spoiled: take the last good
                # version from the database again and have the units computed anew.
                self.console.print(f"[red]{escape(str(exc))}: nothing published[/]")
                strikes.failed(exc, state.version, then=" (the run resumes from it)")
                self._compute_again(state, results)
                state = self._reload(state.run_id, stop)
                continue
            except DatabaseUnavailable:
                # The commit may or may not have happened: rebuild from what the database holds.
                self.console.print("[yellow]database unreachable during an update; reloading[/]")
                state = self._reload(state.run_id, stop)
                continue
            except DatabaseError as exc:
                if exc.sqlstate != LOCK_NOT_AVAILABLE:
                    raise
                # Nothing was published (the transaction rolled back): end what holds the rows
                # and redo the update from the database.
                self.console.print(
                    "[yellow]publishing waited 5 s for rows another session holds; "
                    "redoing the update[/]"
                )
                self.watchdog.sweep()
                state = self._reload(state.run_id, stop)
                continue
            published_at = time.monotonic()
            # An outage here costs nothing: the next update's vacuum takes these dead rows too.
            with contextlib.suppress(DatabaseUnavailable):
                self.reclaim()
            # Every version's values at its step (scored at whole steps when due); grids and
            # checkpoints at whole steps: an alternating run's odd versions hold D's new step
            # and G's old one.
            self.outputs.published(state, values)
            step, mid_step = divmod(state.version, state.plan.versions_per_step)
            if not mid_step and (step % interval == 0 or state.version == total):
                self.outputs.write(state)
        return self._stopped(state)

    def _stopped(self, state: RunState) -> CoordinatorResult:
        """Say where the loop ended; a stopped run keeps its last whole step's outputs."""
        complete = state.version >= state.plan.total_versions
        if complete:
            self.console.print(f"run {state.run_id} complete at version {state.version}")
        else:
            if state.version % state.plan.versions_per_step == 0:
                self.outputs.write(state)
            self.console.print(
                f"coordinator stopped at version {state.version}; run it again to resume"
            )
        return CoordinatorResult(state.run_id, state.version, complete)

    def _compute_again(self, state: RunState, results: list[Valid]) -> None:
        """Every copy of a version whose combined update was not finite goes back to be computed
        again, none blamed: which one made it non-finite cannot be told, and honest students
        must never be quarantined for another's upload."""
        for v in results:
            queue.reject(
                self.db,
                state.run_id,
                v.upload,
                "the combined update was not finite (not counted against anyone)",
                blame=False,
            )

    def _reload(self, run_id: int, stop: StopRequest) -> RunState:
        """The run's state from the database, waiting out an outage (a stop ends the wait with
        :class:`StoppedWaiting`, a :class:`DatabaseUnavailable`)."""
        return retrying(lambda: self._load(run_id), stop=stop.event)

    def validated_results(self, state: RunState) -> list[Valid] | None:
        """This version's first valid copy of each unit (see :mod:`.intake`); None after
        rejecting one."""
        return self.waiter.intake.results(self.db, state, self.console)

    def reclaim(self) -> None:
        """Vacuum the tens of MB of dead blobs an update leaves (see migration 0002), so that
        storage stays flat instead of growing per update. Run after publishing, while the
        workers compute the next version: it is off their path."""
        self.db.execute("vacuum_blob_tables")

    def apply_update(
        self, state: RunState, valid: list[Valid], wait_seconds: float
    ) -> dict[str, float]:
        """Screen and combine with the run's rule (``rules/advance.py``), then publish v+1 in one
        transaction; returns the version's values for the run's outputs."""
        units: list[Unit] = [v.upload.unit for v in valid]
        self._note_skipped(valid)
        # Screening's memory is recorded with each version's update row and loaded with the run
        # state, so a restarted coordinator screens the next version exactly as this one would.
        advance = Advance(state.rule, self.config.coordinator.clip_factor, state.norm_history)
        # One vote per student: their role, or a key of its own for each instructor's worker.
        screening = advance.screen(
            state.server, units, [v.result for v in valid], [v.upload.student for v in valid],
            self._device_states(state, units),
        )  # fmt: skip
        self._note_clipped(valid, screening.clipped)
        if screening.refused:
            self._refuse(state, valid, screening.refused)
        update = advance.combine(state.server, units, screening)
        plan, record = state.plan, update.record
        weights, optimizer_states = server_blobs(state.server)
        downloads = state.downloads
        keep = self.config.coordinator
        contributors = len({v.upload.worker_id for v in valid})
        with self.db.transaction() as tx:
            queue.publish(
                tx,
                state.run,
                update.version,
                weights=weights,
                optimizer_states=optimizer_states,
                downloads=downloads,
                units=update.next_units,
                consumed=Consumed(
                    unit_ids=[v.upload.unit_id for v in valid],
                    worker_ids=[v.upload.worker_id for v in valid],
                    record=record,
                    epoch=plan.epochs_done(update.version),
                    contributors=contributors,
                    wait_seconds=wait_seconds,
                    norms=update.reference,
                ),
                retention=Retention(keep.keep_last_versions, keep.keep_every_versions),
                inputs=None if update.inputs is None else encode_inputs(update.inputs),
                device_moves=update.moves,
            )
        advance.published(state.server, update)
        self.waiter.published()
        state.advanced(update.reference)
        self.console.print(
            f"version {update.version}/{plan.total_versions} "
            f"epoch {plan.epochs_done(update.version):.2f} "
            f"{record.describe()} ({contributors} workers, {wait_seconds:.1f}s)"
        )
        # A phase's unmeasured values are NaN: the outputs leave them out.
        return {
            "epoch": plan.epochs_done(update.version),
            "contributors": contributors,
            "wait_seconds": wait_seconds,
            "d_loss": record.d_loss,
            "g_loss": record.g_loss,
            "d_real": record.d_real,
            "d_fake": record.d_fake,
        }

    def _refuse(self, state: RunState, valid: list[Valid], refused: list[Refused]) -> None:
        """Reject the refused copies and raise :class:`ResultsRefused`: nothing is combined."""
        for r in refused:
            # Blamed and requeued like a copy refused on arrival (a unit refused for several
            # students stops the run: then it is our bug).
            reject_copy(self.db, state, valid[r.index].upload, r.reason, self.console)
        raise ResultsRefused(f"{len(refused)} result(s) of version {state.version} refused")

    def _device_states(
        self, state: RunState, units: list[Unit]
    ) -> dict[int, dict[str, torch.Tensor]]:
        """The stored state of each unit's device before the unit (per-device modes)."""
        spec = device_state_spec(state.rule, state.server.generator, state.server.discriminator)
        states: dict[int, dict[str, torch.Tensor]] = {}
        for unit in units:
            if spec is None or unit.device is None:
                continue
            blob = queue.device_state(self.db, state.run_id, unit.device)
            if blob is not None:
                states[unit.device] = decode_device_state(blob, spec)
        return states

    def _note_skipped(self, valid: list[Valid]) -> None:
        for v in valid:
            if v.result.stats.skipped:  # the same files everywhere: every copy lacks them
                self.console.print(
                    f"[yellow]unit {v.upload.unit.index}[/]: {v.result.stats.skipped} unreadable "
                    f"images skipped (worker {v.upload.worker_id}); the unit trained on "
                    f"{v.result.images}"
                )

    def _note_clipped(self, valid: list[Valid], clipped: list[Clipped]) -> None:
        factor = self.config.coordinator.clip_factor
        for c in clipped:
            upload = valid[c.index].upload
            self.console.print(
                f"[yellow]clipped[/] unit {upload.unit.index} from worker {upload.worker_id}: "
                f"{c.group} norm {c.norm:.3g} scaled to {c.bound:.3g} "
                f"(the version's bound, {factor:g}x a reference of its votes and recent versions)"
            )
