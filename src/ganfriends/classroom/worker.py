"""A student's worker: claim a unit, compute it with the run's rule, upload, repeat.

The loop is synchronous (register -> claim -> compute -> submit), with a heartbeat thread that
keeps the worker on the leaderboard and extends its lease while it computes. Leases are judged by
the database clock; an upload is accepted only while the lease is live (see ``submit_result``).
SIGINT, SIGTERM and SIGHUP stop it warmly (:mod:`ganfriends.signals`): the current unit is finished
and uploaded if that takes less than ``worker.stop_grace`` seconds, else it is given back; a second
signal gives it back at once. A database restart or network drop is waited out with backoff, and
a stop ends that wait at once.
"""

from __future__ import annotations

import contextlib
import os
import platform
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import psutil
import torch
from rich.console import Console
from rich.markup import escape
from torch import nn

from ganfriends.blobs import InvalidBlob
from ganfriends.classroom import queue
from ganfriends.classroom.payload import (
    decode_device_state,
    decode_inputs,
    encode_device_state,
    encode_result,
    load_weights,
)
from ganfriends.classroom.queue import Claim, Hardware, Run
from ganfriends.config import Config
from ganfriends.data import ImageDataset, fingerprint_mismatch, make_dataset
from ganfriends.db import Database, DatabaseUnavailable, StoppedWaiting, retrying
from ganfriends.device import describe_device, resolve_device
from ganfriends.errors import GanError
from ganfriends.models import build_models
from ganfriends.rules import Rule, make_rule
from ganfriends.signals import StopRequest

IDLE_BACKOFF_START = 0.1  # seconds: first wait after an empty poll
IDLE_BACKOFF_FACTOR = 1.15  # huey's gentle growth, capped by worker.poll_interval


class DatasetMismatch(GanError):
    """This worker's dataset is not the run's."""


class VersionGone(GanError):
    """The claimed unit's version was consumed and pruned while this worker got to it."""


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


class PublishedWeights:
    """The published version the models hold, downloaded only when the version changes.

    Computing a unit moves the BatchNorm buffers, so before each unit the published state is
    restored from a local copy rather than fetched again.
    """

    def __init__(self, generator: nn.Module, discriminator: nn.Module) -> None:
        self.models = (generator, discriminator)
        self.version: int | None = None
        self._states: tuple[dict[str, torch.Tensor], ...] = ()

    def load(self, db: Database, run_id: int, version: int) -> None:
        """Make the models hold weights ``version`` exactly as published."""
        if version == self.version:
            for model, state in zip(self.models, self._states, strict=True):
                model.load_state_dict(state)
            return
        weights = queue.weights(db, run_id, version)
        if weights is None:
            raise VersionGone(f"weights of version {version} are gone from the database")
        load_weights(self.models[0], weights.generator)
        load_weights(self.models[1], weights.discriminator)
        self._states = tuple(
            {k: v.detach().clone() for k, v in m.state_dict().items()} for m in self.models
        )
        self.version = version


@dataclass
class _Session:
    """What a worker holds while it works for one run."""

    run: Run
    rule: Rule
    dataset: ImageDataset
    generator: nn.Module
    discriminator: nn.Module
    published: PublishedWeights

    @property
    def run_id(self) -> int:
        """The run this worker serves."""
        return self.run.id


class Worker:
    """One worker process (or thread, in tests)."""

    def __init__(self, db: Database, config: Config, *, console: Console | None = None) -> None:
        self.db = db
        self.config = config
        self.console = console or Console(soft_wrap=True)
        self.device = resolve_device(config.training.device)
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
        """The run's dataset from this machine's copy; refuse to work on different data."""
        data = self.config.data
        dataset = make_dataset(
            run.config.data.dataset,
            path=data.dataset_path,
            image_size=run.model_config.image_size,
            data_dir=data.data_dir,
            download=data.download,
        )
        reason = fingerprint_mismatch(dataset, run.fingerprint)
        if reason is not None:
            if reason.startswith("this dataset"):  # other files, not an old or broken run
                reason += (
                    ": get the same files as the instructor (same images, same names) "
                    "and point --dataset-path at them"
                )
            raise DatasetMismatch(reason)
        return dataset

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

    def _join(self, run: Run, stop: StopRequest) -> _Session:
        """Check the data, build the models and register on the leaderboard."""
        dataset = self._open_dataset(run)
        self.console.print(
            f"Loaded dataset with {len(dataset)} images ({dataset.fingerprint().short()})"
        )
        generator, discriminator = build_models(run.model_config)
        generator, discriminator = generator.to(self.device), discriminator.to(self.device)
        session = _Session(
            run=run,
            rule=make_rule(run.mode, run.plan, run.config, run.model_config, dataset),
            dataset=dataset,
            generator=generator,
            discriminator=discriminator,
            published=PublishedWeights(generator, discriminator),
        )
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

    def _device_state(self, session: _Session, claim: Claim) -> dict[str, torch.Tensor] | None:
        """The local state the claimed unit's device starts from (per-device modes)."""
        spec = session.rule.device_state_spec(session.generator, session.discriminator)
        if spec is None or claim.unit.device is None:
            return None
        blob = queue.device_state(self.db, session.run_id, claim.unit.device)
        if blob is None:
            return None
        try:
            return decode_device_state(blob, spec)
        except InvalidBlob as exc:  # the coordinator validated it; say so rather than crash
            raise GanError(f"device {claim.unit.device}'s stored state is invalid: {exc}") from exc

    def _inputs(self, session: _Session, claim: Claim) -> dict[str, torch.Tensor]:
        """The published inputs the claimed unit reads (MD-GAN: its two generated batches)."""
        spec = session.rule.inputs_spec(session.generator, session.discriminator)
        assert spec is not None
        names = session.rule.inputs_needed(claim.unit)
        blobs = queue.inputs(self.db, session.run_id, claim.version, names)
        if set(blobs) != set(names):
            raise VersionGone(f"the inputs of version {claim.version} are gone from the database")
        try:
            return decode_inputs(blobs, spec)
        except InvalidBlob as exc:  # written by the coordinator: say so rather than crash
            raise GanError(f"the inputs of version {claim.version} are invalid: {exc}") from exc

    def _process(self, session: _Session, claim: Claim, stop: StopRequest) -> bool:
        """Compute a claimed unit and upload it; True if the upload was accepted."""
        unit = claim.unit
        where = f"device {unit.device}, " if unit.device is not None else ""
        self.console.print(
            f"\nProcessing work unit {unit.index} ({where}version {claim.version}"
            + (", backup copy" if claim.backup else "")
            + ")"
        )
        inputs = None
        try:
            if session.rule.publishes_weights:
                self._retry(stop, session.published.load, self.db, session.run_id, claim.version)
            else:
                inputs = self._retry(stop, self._inputs, session, claim)
        except VersionGone as exc:
            # Another copy of the unit completed it and the run moved on (old versions are
            # pruned): nothing is lost, there is just nothing left to do for this claim.
            self.console.print(f"{exc}: another copy completed this unit; moving on")
            return False
        device_state = self._retry(stop, self._device_state, session, claim)
        started = time.monotonic()
        try:
            result = session.rule.compute(
                session.generator,
                session.discriminator,
                session.dataset,
                unit,
                device=self.device,
                device_state=device_state,
                inputs=inputs,
            )
        except torch.cuda.OutOfMemoryError as exc:
            raise GanError(
                f"this GPU cannot fit the run's batches at {session.run.model_config.image_size}"
                "px: run with --device cpu, or ask the instructor for a smaller batch"
            ) from exc
        seconds = time.monotonic() - started
        stats = result.stats
        if stats.skipped:
            self.console.print(
                f"[yellow]unit {unit.index}: {stats.skipped} of {stats.images + stats.skipped} "
                "images are unreadable in this copy of the data and were skipped[/]"
            )
        # What this unit's phase measured (an alternating run's D units have no G loss).
        measured = session.rule.history(claim.version, stats)
        self.console.print(
            f"Completed {stats.images} images in {seconds:.1f}s\n"
            f"{measured.describe()}\nUploading results..."
        )
        accepted = self._retry(
            stop,
            queue.submit,
            self.db,
            session.run_id,
            self.worker_id,
            claim,
            images=stats.images,
            payload=encode_result(
                result,
                session.rule.result_spec(session.generator, session.discriminator, claim.version),
            ),
            device_state=(
                None if result.device_state is None else encode_device_state(result.device_state)
            ),
            compute_seconds=seconds,
        )
        if accepted:
            self.console.print(f"Work unit {unit.index} completed successfully!")
            return True
        self.console.print(
            f"Work unit {unit.index} was not needed any more "
            "(another worker finished it first, or the lease expired)"
        )
        return False

    def run(
        self, stop: StopRequest | None = None, *, max_units: int | None = None
    ) -> WorkerSummary:
        """Work until the run completes, ``stop`` is requested, or ``max_units`` are done."""
        stop = stop or StopRequest()
        self.console.print("Initializing worker...")
        try:
            run = self._wait_for_run(stop)
            if run is None:
                return WorkerSummary(None, 0, 0, "stopped before a run started")
            session = self._join(run, stop)
        except StoppedWaiting:
            self.console.print("Stopped while the database was unreachable.")
            return WorkerSummary(self.worker_id, 0, 0, "stopped")
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
        claim: Claim | None = None
        try:
            while not stop.requested and (max_units is None or units < max_units):
                claim = self._retry(stop, self.claim, session.run_id)
                if claim is None:
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
                if self._process(session, claim, stop):
                    units += 1
                else:
                    refused += 1
                claim = None
            else:
                if max_units is not None and units >= max_units:
                    reason = f"did {units} units"
        except StoppedWaiting:
            self.console.print(
                "Stopped while the database was unreachable"
                + (" (the unit's lease expires by itself)." if claim is not None else ".")
            )
            return WorkerSummary(self.worker_id, units, refused, "stopped")
        except KeyboardInterrupt:
            reason = "aborted"
            if claim is not None:
                self.console.print("Aborting: giving the unit back")
                with contextlib.suppress(GanError):  # else the lease expires by itself
                    self.db.execute("release_lease", token=claim.token, worker_id=self.worker_id)
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

    def claim(self, run_id: int) -> Claim | None:
        """The next unit for this worker (see :func:`queue.claim`)."""
        assert self.worker_id is not None
        return queue.claim(self.db, run_id, self.worker_id)
