"""Can a class scale to 100 workers? N simulated workers against one real coordinator.

Every database statement is real: each simulated worker, logged in as a student role of its own
(as ``ganfriends students add`` makes them), registers, waits for work as an idle
worker does (LISTEN/NOTIFY wake-ups, polling as the fallback), claims, downloads the weights of
each new version, uploads an honest result of the right shape and size, and loops, on a pool of
its own as large as the real worker's plus its wake-up listener. Only the compute is replaced by
a fixed delay (``--delay``: 0.5 s is a GPU on a 320-image unit, 5 s a laptop CPU). The real
``Coordinator`` drives the run: validation, screening, Adam, publishing. K = N units per update
(each worker computes one unit of each version). With ``--local-steps H`` a unit is H local
steps on H such batches: its 'compute' takes H delays, and its result is an honest weight change
(computed once, on a small slice, with the same tensors).

For each N it prints: updates per second, worker utilisation (time in "compute" over time
alive), the coordinator's share of the wall time (validate + combine + publish), the seconds an
update spends between its last upload and its publish, and the peak number of database
sessions (the server's ``max_connections`` must cover them).

    python benchmarks/swarm.py [--workers 10 30 100] [--delay 0.5] [--versions 5] [--local-steps 1]
        [--transfer-dtype float32] [--download-dtype float32]

Prints a table; not a test. Put the figures in your notes.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from psycopg.conninfo import make_conninfo
from rich.console import Console

from ganfriends.classroom import queue
from ganfriends.classroom.payload import encode_result
from ganfriends.classroom.worker import IDLE_BACKOFF_FACTOR, IDLE_BACKOFF_START
from ganfriends.compat import WORKER_VERSION
from ganfriends.compression import DOWNLOAD_CHOICES, TRANSFERS
from ganfriends.config import Config
from ganfriends.data import DatasetFingerprint, ImageDataset
from ganfriends.db import Database, EmbeddedPostgres, migrate, server
from ganfriends.db.server import APP_DATABASE
from ganfriends.db.students import add_student
from ganfriends.models import ModelConfig, build_models
from ganfriends.rules import SyncPlan, Unit, make_rule
from ganfriends.rules.work import Workspace
from ganfriends.signals import StopRequest

if not __package__:  # run by path, as `python benchmarks/NAME.py`: import the package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_run import start_run
from benchmarks.latency_proxy import DelayProxy

MODEL = ModelConfig(image_size=32, channels=1)  # the class default: Fashion-MNIST's DCGAN
IMAGES_PER_UNIT = 320
MICRO_BATCH = 64
WORKER_POOL = 3  # as `ganfriends worker`: main loop, heartbeat, one spare
POLL_INTERVAL = Config().worker.poll_interval


class RandomImages(ImageDataset):
    """Random pixels for the one real compute that makes the upload blob."""

    name, image_size, channels, in_memory = "random", 32, 1, True

    def __len__(self) -> int:
        return IMAGES_PER_UNIT

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.rand(1, 32, 32) * 2 - 1

    def get_batch(self, indices: Sequence[int]) -> tuple[torch.Tensor, int]:
        return torch.rand(len(indices), 1, 32, 32) * 2 - 1, 0

    def fingerprint(self) -> DatasetFingerprint:
        return DatasetFingerprint("random", IMAGES_PER_UNIT, 32, 1, "0" * 64)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[10, 30, 100])
    parser.add_argument("--delay", type=float, default=0.5, help="seconds of 'compute' per unit")
    parser.add_argument("--versions", type=int, default=5, help="updates per case (default 5)")
    parser.add_argument(
        "--local-steps", type=int, default=1, help="H local steps per unit (default 1: exact)"
    )
    parser.add_argument(
        "--units-per-update", type=int, default=None, help="K (default: N, one unit per worker)"
    )
    parser.add_argument(
        "--transfer-dtype", default="float32", choices=list(TRANSFERS), help="uploads' form"
    )
    parser.add_argument(
        "--download-dtype", default="float32", choices=list(DOWNLOAD_CHOICES),
        help="the form of the weights workers download",
    )  # fmt: skip
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        help="round trip added between the workers and the database (a student's network)",
    )
    parser.add_argument(
        "--units-per-claim",
        type=int,
        nargs="+",
        default=[1],
        help="units each worker claims and uploads at once (each value is a case)",
    )
    return parser.parse_args(argv)


class SimulatedWorker(threading.Thread):
    """A worker's database traffic with the compute replaced by ``delay`` seconds."""

    def __init__(
        self, url: str, run_id: int, delay: float, payload: bytes, images: int, per_claim: int
    ) -> None:
        super().__init__(daemon=True)
        self.db = Database(url, max_size=WORKER_POOL)
        self.listener = self.db.listener("listen_work")
        self.run_id, self.delay, self.payload, self.images = run_id, delay, payload, images
        self.per_claim = per_claim
        self.calls = self.units = 0  # database calls (each its own round trip and transaction)
        self.overhead = 0.0  # seconds in the calls that fetch, claim and upload work
        self.halt = threading.Event()
        self.computing = 0.0
        self.started = time.perf_counter()
        self.worker_id = self.db.fetch_one(
            "register_worker", run_id=run_id, name=f"sim-{id(self)}", hostname="swarm",
            device="cpu", gpu_name=None, gpu_vram_gb=None, cpu_cores=1, ram_gb=None,
            version=WORKER_VERSION,
        )["id"]  # type: ignore[index]  # fmt: skip

    def run(self) -> None:
        version, idle = -1, IDLE_BACKOFF_START
        held: dict[str, bytes] = {}  # digests of the networks it holds
        while not self.halt.is_set():
            asked = time.perf_counter()
            claims = queue.claim(self.db, self.run_id, self.worker_id, self.per_claim)
            self.calls += 1
            if not claims:
                self.calls += 1
                if queue.run_state(self.db, self.run_id) != "running":
                    return
                woken = self.listener.wait(idle, self.halt)
                idle = (
                    IDLE_BACKOFF_START if woken else min(idle * IDLE_BACKOFF_FACTOR, POLL_INTERVAL)
                )
                continue
            idle = IDLE_BACKOFF_START
            self.overhead += time.perf_counter() - asked
            asked = time.perf_counter()
            if claims[0].version != version:  # what a worker downloads: the changed networks
                changed = queue.changed_weights(self.db, self.run_id, claims[0].version, held)
                held = {} if changed is None else changed.digests
                version = claims[0].version
                self.calls += 1
            self.overhead += time.perf_counter() - asked
            time.sleep(self.delay * len(claims))
            self.computing += self.delay * len(claims)
            results = [
                queue.Outgoing(claim, self.images, self.payload, None, self.delay)
                for claim in claims
            ]
            asked = time.perf_counter()
            queue.submit(self.db, self.run_id, self.worker_id, results)
            self.overhead += time.perf_counter() - asked
            self.calls += 1
            self.units += len(claims)

    def close(self) -> float:
        """Stop; the fraction of its life spent computing."""
        self.halt.set()
        self.join(timeout=POLL_INTERVAL + 10)
        alive = time.perf_counter() - self.started
        self.listener.close()
        self.db.close()
        return self.computing / alive


def honest_payload(plan: SyncPlan, config: Config) -> tuple[bytes, int]:
    """An honest result of the plan's first unit, encoded, and its images. With local steps it
    is computed on a 4-image slice of each batch (the same tensors; the images it claims are
    within a full unit's), so that a case does not wait minutes for a CPU to train."""
    small = dataclasses.replace(plan, images_per_unit=4, micro_batch=4) if plan.local else plan
    g, d = build_models(MODEL)
    rule = make_rule("sync", small, config, MODEL)
    honest = rule.compute(Workspace(g, d, RandomImages(), torch.device("cpu")), Unit(0))
    return encode_result(honest), honest.images


def case(
    url: str,
    students: Sequence[str],
    delay: float,
    versions: int,
    units: int,
    per_claim: int,
    local_steps: int = 1,
    dtypes: tuple[str, str] = ("float32", "float32"),
) -> dict[str, float]:
    """One run of ``versions`` updates of ``units`` units, one simulated worker per student URL,
    each claiming ``per_claim`` units at once; units of ``local_steps`` steps (``delay`` each);
    uploads and downloads in ``dtypes``."""
    config = Config()
    config.coordinator.transfer_dtype, config.coordinator.download_dtype = dtypes
    config.coordinator.max_units_per_claim = max(per_claim, 1)
    config.coordinator.max_iterations = versions
    config.coordinator.sample_interval = 10**9
    plan = SyncPlan(dataset_size=IMAGES_PER_UNIT * units * (versions * local_steps + 1), seed=0,
                    images_per_unit=IMAGES_PER_UNIT, units_per_update=units,
                    micro_batch=MICRO_BATCH, epochs=1, max_updates=versions * local_steps,
                    update_rule="simultaneous", local_steps=local_steps)  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="ganfriends-swarm-out-") as out:
        config.coordinator.output_dir = out
        with Database(url, max_size=5) as db:
            bench = start_run(db, MODEL, plan, config)
            payload, images = honest_payload(plan, config)
            coordinator = bench.coordinator
            busy: list[float] = []
            publish_times: list[float] = []
            apply_update = coordinator.apply_update

            def timed_update(*args, **kwargs):  # type: ignore[no-untyped-def]
                start = time.perf_counter()
                values = apply_update(*args, **kwargs)
                busy.append(time.perf_counter() - start)
                publish_times.append(time.perf_counter())
                return values

            coordinator.apply_update = timed_update  # type: ignore[method-assign]
            sims = [
                SimulatedWorker(
                    student, bench.run_id, delay * local_steps, payload, images, per_claim
                )
                for student in students
            ]
            peak = [0]
            sampling = threading.Event()

            def sample_sessions() -> None:
                with Database(url, max_size=1) as probe:
                    while not sampling.wait(0.2):
                        row = probe.fetch_one("session_count")
                        peak[0] = max(peak[0], int(row["sessions"]) if row else 0)

            sampler = threading.Thread(target=sample_sessions, daemon=True)
            sampler.start()
            started = time.perf_counter()
            for sim in sims:
                sim.start()
            coordinator.run(StopRequest())
            wall = time.perf_counter() - started
            sampling.set()
            sampler.join(timeout=5)
            utilisation = statistics.mean(sim.close() for sim in sims)
            done = max(1, sum(sim.units for sim in sims))
            calls = sum(sim.calls for sim in sims) / done
            overhead = sum(sim.overhead for sim in sims) / done
    return {
        "calls_per_unit": calls,
        "overhead_per_unit": overhead,
        "updates_per_s": versions / wall,
        "utilisation": utilisation,
        "coordinator_share": sum(busy) / wall,
        "update_s": statistics.median(busy),
        "sessions": peak[0],
    }


def main(argv: Sequence[str] | None = None) -> None:
    """Every N; one markdown table."""
    args = parse_args(argv)
    # Room for the largest class: each worker holds its pool and a listener.
    server.MAX_CONNECTIONS = max(server.MAX_CONNECTIONS, max(args.workers) * (WORKER_POOL + 1) + 50)
    rows = []
    with tempfile.TemporaryDirectory(prefix="ganfriends-swarm-") as root:
        embedded = EmbeddedPostgres(Path(root) / "pg")
        info = embedded.start()
        url = info.local_url()
        stack = contextlib.ExitStack()
        assert info.socket_dir is not None
        proxy = DelayProxy(info.socket_dir / f".s.PGSQL.{info.port}", args.latency_ms / 2000)
        try:
            with Database(url, max_size=1) as db:
                migrate(db)
            stack.enter_context(proxy)
            # Workers reach the server through the proxy (a round trip of --latency-ms); the
            # coordinator, on the instructor's machine, directly.
            reach: dict[str, str | int] = (
                {"host": "127.0.0.1", "port": proxy.port} if args.latency_ms else {}
            )
            # A class: one login role per student, as `ganfriends students add` makes them.
            students = [
                make_conninfo(
                    url,
                    user=name,
                    password=add_student(info.admin_url(APP_DATABASE), name),
                    **reach,
                )
                for name in (f"student_{i}" for i in range(max(args.workers)))
            ]
            for workers in args.workers:
                units = args.units_per_update or workers
                for per_claim in args.units_per_claim:
                    Console(stderr=True).print(f"N = {workers}, K = {units}, {per_claim}/claim ...")
                    result = case(
                        url, students[:workers], args.delay, args.versions, units, per_claim,
                        args.local_steps, (args.transfer_dtype, args.download_dtype),
                    )  # fmt: skip
                    rows.append((workers, units, per_claim, result))
        finally:
            stack.close()
            embedded.stop()
    print(f"### {args.versions} updates, K units of {args.local_steps} x {IMAGES_PER_UNIT} "
          f"images, uploads {args.transfer_dtype}, downloads {args.download_dtype}, "
          f"'compute' {args.delay:g} s per unit, 32x32 DCGAN, "
          f"workers' round trip +{args.latency_ms:g} ms\n")  # fmt: skip
    print(
        "| workers N | units K | units per claim | updates/s | worker utilisation | "
        "coordinator share | update s (median) | peak sessions | worker calls per unit | "
        "worker overhead ms per unit |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for workers, units, per_claim, r in rows:
        cells = [
            str(workers),
            str(units),
            str(per_claim),
            f"{r['updates_per_s']:.2f}",
            f"{100 * r['utilisation']:.0f}%",
            f"{100 * r['coordinator_share']:.0f}%",
            f"{r['update_s']:.2f}",
            f"{r['sessions']:.0f}",
            f"{r['calls_per_unit']:.2f}",
            f"{1000 * r['overhead_per_unit']:.0f}",
        ]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
