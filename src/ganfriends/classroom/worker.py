"""A student's worker: claim units, compute them with the run's rule, upload, repeat.

The loop is synchronous (register -> claim -> compute -> submit), with a heartbeat thread that
keeps the worker on the leaderboard and extends its leases while it computes. A claim takes one
unit, or up to ``--units-per-claim`` of one version (the run caps it); they are computed one after
another (:mod:`ganfriends.classroom.unit_work`) and uploaded in one call. Leases are judged by
the database clock; an upload is accepted only while its lease is live (``worker_submit_result``).
SIGINT, SIGTERM and SIGHUP stop it warmly (:mod:`ganfriends.signals`): the unit in hand is finished
and uploaded if that takes less than ``worker.stop_grace`` seconds, else it is given back, as are
claimed units not started; a second signal gives them back at once. A database restart or network
drop is waited out with backoff, and a stop ends that wait at once.
"""

from __future__ import annotations

import contextlib
import os
import platform
import socket
import threading
from dataclasses import dataclass
from typing import Any

import psutil
import torch
from rich.console import Console
from rich.markup import escape

from ganfriends.classroom import queue
from ganfriends.classroom.queue import Claim, Hardware, Outgoing, Run
from ganfriends.classroom.unit_work import Computed, VersionGone, WorkSession
from ganfriends.config import Config
from ganfriends.data import ImageDataset, fingerprint_mismatch
from ganfriends.db import (
    Database,
    DatabaseError,
    DatabaseUnavailable,
    StoppedWaiting,
    retrying,
)
from ganfriends.device import describe_device, resolve_device
from ganfriends.errors import GanError
from ganfriends.signals import StopRequest
from ganfriends.training.setup import open_dataset

IDLE_BACKOFF_START = 0.1  # seconds: first wait after an empty poll
IDLE_BACKOFF_FACTOR = 1.15  # huey's gentle growth, capped by worker.poll_interval


class DatasetMismatch(GanError):
    """This worker's dataset is not the run's."""


def open_run_dataset(config: Config, run: Run) -> ImageDataset:
    """The run's dataset from this machine's copy (``config``'s data section); refuse to work on
    different data (:class:`DatasetMismatch`). ``ganfriends doctor`` checks with it too."""
    dataset = open_dataset(config.data, run.config.data.dataset, run.model_config.image_size)
    reason = fingerprint_mismatch(dataset, run.fingerprint)
    if reason is not None:
        if reason.startswith("this dataset"):  # other files, not an old or broken run
            reason += (
                ": get the same files as the instructor (same images, same names) "
                "and point --dataset-path at them"
            )
        raise DatasetMismatch(reason)
    return dataset


def detect_hardware(device: torch.device) -> Hardware:
    """Read the machine's resources."""
    gpu_name = vram = None
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        gpu_name, vram = props.name, props.total_memory / 2**30
    ram = psutil.virtual_memory().total / 2**30
    return Hardware(device.type, gpu_name, vram, os.cpu_count() or 1, ram)


@dataclass
class WorkerSummary:
    """What a worker did before it exited."""

    worker_id: int | None
    units: int
    refused: int
    reason: str


class Worker:
    """One worker process (or thread, in tests)."""

    def __init__(self, db: Database, config: Config, *, console: Console | None = None) -> None:
        self.db = db
        self.config = config
        self.console = console or Console(soft_wrap=True)
        self.device = resolve_device(config.local.device)
        self.name = config.worker.name or socket.gethostname()
        self.worker_id: int | None = None
        self._lease_lock = threading.Lock()

    # ---------------------------------------------------------------- database calls with retry

    def _retry(self, stop: StopRequest, call: Any, *args: Any, **kwargs: Any) -> Any:
        """Run a database call, waiting out outages with :func:`ganfriends.db.retrying`.

        A stop during an outage ends the wait at once (:class:`StoppedWaiting`): nothing can be
        handed back to a database we cannot reach, and the lease expires by itself.
        """

        def say(attempt: int, delay: float, exc: Exception) -> None:
            self.console.print(f"[yellow]database unreachable ({exc}); retrying in {delay:.0f}s[/]")

        return retrying(lambda: call(*args, **kwargs), on_retry=say, stop=stop.event)

    # ---------------------------------------------------------------- set-up

    def _wait_for_run(self, stop: StopRequest) -> Run | None:
        announced = False
        while not stop.requested:
            run: Run | None = self._retry(stop, queue.latest_running_run, self.db)
            if run is not None:
                return run
            if not announced:
                self.console.print("Waiting for the instructor to start a run...")
                announced = True
            stop.event.wait(self.config.worker.poll_interval)
        return None

    def _open_dataset(self, run: Run) -> ImageDataset:
        """The run's dataset from this machine's copy (tests replace it)."""
        return open_run_dataset(self.config, run)

    # ---------------------------------------------------------------- heartbeat

    def _heartbeat(self, halt: threading.Event, interval: float) -> None:
        """Every ``interval`` seconds: show we are alive and extend our leases."""
        while not halt.wait(interval):
            try:
                with self.db.transaction() as tx:
                    tx.execute("heartbeat", worker_id=self.worker_id)
                    tx.execute("extend_leases", worker_id=self.worker_id)
            except DatabaseUnavailable:
                pass  # the main loop reports outages; the lease has slack for a missed beat
            except GanError as exc:  # pragma: no cover - logged, never kills the worker
                self.console.print(f"[yellow]heartbeat failed: {exc}[/]")

    # ---------------------------------------------------------------- main loop

    def _join(self, run: Run, stop: StopRequest) -> WorkSession:
        """Check the data, build the models and register on the leaderboard."""
        dataset = self._open_dataset(run)
        self.console.print(
            f"Loaded dataset with {len(dataset)} images ({dataset.fingerprint().short()})"
        )
        session = WorkSession.open(run, dataset, self.device)
        hardware = detect_hardware(self.device)
        self.worker_id = self._retry(
            stop,
            queue.register_worker,
            self.db,
            run.id,
            self.name,
            socket.gethostname(),
            hardware,
        )
        self.console.print(
            f"Worker {self.worker_id} initialized successfully!\n"
            f"Name: {escape(self.name)}\nDevice: {describe_device(self.device)}\n"
            f"Mode: {run.mode}, {run.plan.describe()} (set by the run)\n"
            f"CPU cores: {hardware.cpu_cores}\n"
            + (f"RAM: {hardware.ram_gb:.1f} GB\n" if hardware.ram_gb else "")
            + (f"GPU VRAM: {hardware.gpu_vram_gb:.1f} GB\n" if hardware.gpu_vram_gb else "")
            + f"Run {run.id} on {platform.node() or 'this machine'}: "
            "waiting for work units..."
        )
        return session

    def _compute(self, session: WorkSession, claim: Claim, stop: StopRequest) -> Computed | None:
        """Compute a claimed unit; None when its version is gone (nothing left to do)."""
        unit = claim.unit
        where = f"device {unit.device}, " if unit.device is not None else ""
        self.console.print(
            f"\nProcessing work unit {unit.index} ({where}version {claim.version}"
            + (", backup copy" if claim.backup else "")
            + ")"
        )
        try:
            inputs = self._retry(stop, session.load_version, self.db, claim)
        except VersionGone as exc:
            # Another copy of the unit completed it and the run moved on (old versions are
            # pruned): nothing is lost, there is just nothing left to do for this claim.
            self.console.print(f"{exc}: another copy completed this unit; moving on")
            return None
        device_state = self._retry(stop, session.device_state, self.db, claim)
        computed = session.compute(claim, inputs=inputs, device_state=device_state)
        stats = computed.stats
        if stats.skipped:
            self.console.print(
                f"[yellow]unit {unit.index}: {stats.skipped} of {stats.images + stats.skipped} "
                "images are unreadable in this copy of the data and were skipped[/]"
            )
        # What this unit's phase measured (an alternating run's D units have no G loss).
        measured = session.rule.history(claim.version, stats)
        self.console.print(
            f"Completed {stats.images} images in {computed.outgoing.compute_seconds:.1f}s\n"
            f"{measured.describe()}"
        )
        return computed

    def _upload(self, session: WorkSession, ready: list[Outgoing], stop: StopRequest) -> int:
        """Upload computed units in one call; how many were accepted."""
        if not ready:
            return 0
        self.console.print(f"Uploading {len(ready)} results..." if ready[1:] else "Uploading...")
        stored = self._retry(stop, queue.submit, self.db, session.run_id, self.worker_id, ready)
        for out in ready:
            index = out.claim.unit.index
            if out.claim.unit_id in stored:
                self.console.print(f"Work unit {index} completed successfully!")
            else:
                self.console.print(
                    f"Work unit {index} was not needed any more "
                    "(another worker finished it first, or the lease expired)"
                )
        return len(stored)

    def _work_on(
        self, session: WorkSession, claims: list[Claim], stop: StopRequest
    ) -> tuple[int, int]:
        """Compute a claim's units one after another and upload them together: (accepted,
        refused). A stop finishes the unit in hand and gives back the ones not started."""
        ready: list[Outgoing] = []
        started = 0
        for claim in claims:
            if started and stop.requested:
                break
            started += 1
            computed = self._compute(session, claim, stop)
            if computed is not None:
                ready.append(computed.outgoing)
        untouched = claims[started:]
        if untouched:
            self.console.print(f"Giving back {len(untouched)} claimed unit(s) not started")
            with contextlib.suppress(GanError):  # else their leases expire by themselves
                queue.release(self.db, self.worker_id_or_fail, untouched)
        accepted = self._upload(session, ready, stop)
        return accepted, started - accepted

    def run(
        self, stop: StopRequest | None = None, *, max_units: int | None = None
    ) -> WorkerSummary:
        """Work until the run completes, ``stop`` is requested, or ``max_units`` are done."""
        stop = stop or StopRequest()
        self.console.print("Initializing worker...")
        run: Run | None = None
        try:
            run = self._wait_for_run(stop)
            if run is None:
                return WorkerSummary(None, 0, 0, "stopped before a run started")
            session = self._join(run, stop)
        except StoppedWaiting:
            self.console.print("Stopped while the database was unreachable.")
            return WorkerSummary(self.worker_id, 0, 0, "stopped")
        except DatabaseError as exc:
            # worker_register's no_data_found: the run ended while this worker loaded its data.
            if run is None or exc.sqlstate != "P0002":
                raise
            reason = f"run {run.id} ended before this worker joined"
            self.console.print(f"Training finished ({reason}). Thank you!")
            return WorkerSummary(None, 0, 0, reason)
        halt = threading.Event()
        # At least three beats per lease, so one lost beat never costs a unit.
        interval = min(self.config.worker.heartbeat_interval, run.lease_seconds / 3)
        beat = threading.Thread(
            target=self._heartbeat, args=(halt, interval), daemon=True, name="heartbeat"
        )
        beat.start()
        # Woken by the coordinator's publish (LISTEN/NOTIFY) instead of sleeping out the backoff;
        # the backoff's polls stay as the fallback when a notification is lost.
        wakeups = self.db.listener("listen_work")
        units = refused = 0
        idle = IDLE_BACKOFF_START
        reason = "stopped"
        claims: list[Claim] = []
        try:
            while not stop.requested and (max_units is None or units < max_units):
                wanted = self.config.worker.units_per_claim
                if max_units is not None:
                    wanted = min(wanted, max_units - units)
                claims = self._retry(stop, self.claim, session.run_id, wanted)
                if not claims:
                    state = self._retry(stop, queue.run_state, self.db, session.run_id)
                    if state != "running":
                        reason = f"run {session.run_id} is {state or 'gone'}"
                        self.console.print(f"Training finished ({reason}). Thank you!")
                        break
                    if wakeups.wait(idle, stop.event):
                        idle = IDLE_BACKOFF_START
                    else:
                        idle = min(idle * IDLE_BACKOFF_FACTOR, self.config.worker.poll_interval)
                    continue
                idle = IDLE_BACKOFF_START
                accepted, not_needed = self._work_on(session, claims, stop)
                units += accepted
                refused += not_needed
                claims = []
            else:
                if max_units is not None and units >= max_units:
                    reason = f"did {units} units"
        except StoppedWaiting:
            self.console.print(
                "Stopped while the database was unreachable"
                + (" (the units' leases expire by themselves)." if claims else ".")
            )
            return WorkerSummary(self.worker_id, units, refused, "stopped")
        except KeyboardInterrupt:
            reason = "aborted"
            if claims:
                what = "the unit" if len(claims) == 1 else f"the {len(claims)} units"
                self.console.print(f"Aborting: giving {what} back")
                with contextlib.suppress(GanError):  # else the leases expire by themselves
                    queue.release(self.db, self.worker_id_or_fail, claims)
            raise
        finally:
            wakeups.close()
            halt.set()
            beat.join(timeout=5)
            with contextlib.suppress(GanError):
                self.db.execute("worker_stopped", worker_id=self.worker_id)
        if stop.requested:
            self.console.print("Stopped after finishing the current unit. See you next time!")
        return WorkerSummary(self.worker_id, units, refused, reason)

    @property
    def worker_id_or_fail(self) -> int:
        """This worker's id (it is registered before it claims anything)."""
        assert self.worker_id is not None
        return self.worker_id

    def claim(self, run_id: int, count: int = 1) -> list[Claim]:
        """The next units for this worker (see :func:`queue.claim`)."""
        return queue.claim(self.db, run_id, self.worker_id_or_fail, count)
