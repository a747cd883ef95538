"""How fast idle workers start on a new version: LISTEN/NOTIFY wake-ups against polling alone.

Starts an embedded PostgreSQL and a sync run whose versions have one unit per worker. N worker
threads wait as an idle ``ganfriends worker`` does (claim; when there is nothing, back off from
0.1 s by x1.15 up to the 5 s poll interval), either on the ``ganfriends_work`` channel (the
default: the wait ends at the publish's notification) or sleeping (polling alone, as before).
The coordinator side publishes each version with the real publishing transaction
(``queue.publish``) after a gap in which every worker went idle, and each worker's latency is
the time from the publish's commit to its successful claim.

    python benchmarks/wakeup.py [--workers 10] [--versions 10] [--gaps 1 5]

Prints a table (median, 90th percentile and worst latency per mode and gap); not a test.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from ganfriends.classroom import queue
from ganfriends.classroom.queue import Consumed
from ganfriends.classroom.state import server_blobs
from ganfriends.classroom.worker import IDLE_BACKOFF_FACTOR, IDLE_BACKOFF_START
from ganfriends.compat import WORKER_VERSION
from ganfriends.config import Config
from ganfriends.db import Database, EmbeddedPostgres, migrate
from ganfriends.db.notifications import Listener
from ganfriends.models import ModelConfig
from ganfriends.rules import SyncPlan, Unit
from ganfriends.rules.base import UpdateRecord
from ganfriends.step import StepStats

if not __package__:  # run by path, as `python benchmarks/NAME.py`: import the package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_run import start_run

POLL_INTERVAL = Config().worker.poll_interval
MODEL = ModelConfig(image_size=32, channels=1, latent_dim=8, g_features=4, d_features=4)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=10, help="idle workers (default 10)")
    parser.add_argument("--versions", type=int, default=10, help="versions timed per case")
    parser.add_argument(
        "--gaps", type=float, nargs="+", default=[1.0, 5.0],
        help="seconds between publishes, i.e. how long workers were idle (default 1 5)",
    )  # fmt: skip
    return parser.parse_args(argv)


class IdleWorker(threading.Thread):
    """A worker's claim loop without the compute: claim, finish the lease at once, else wait."""

    def __init__(self, url: str, run_id: int, notify: bool, claims: list[float]) -> None:
        super().__init__(daemon=True)
        self.db = Database(url, max_size=1)
        self.run_id, self.claims, self.halt = run_id, claims, threading.Event()
        self.worker_id = self.db.fetch_one(
            "register_worker", run_id=run_id, name=self.name, hostname="bench", device="cpu",
            gpu_name=None, gpu_vram_gb=None, cpu_cores=None, ram_gb=None, version=WORKER_VERSION,
        )["id"]  # type: ignore[index]  # fmt: skip
        self.listener: Listener | None = self.db.listener("listen_work") if notify else None

    def run(self) -> None:
        idle = IDLE_BACKOFF_START
        while not self.halt.is_set():
            claims = queue.claim(self.db, self.run_id, self.worker_id)
            if claims:
                self.claims.append(time.perf_counter())
                self.db.fetch_one("submit_result", run_id=self.run_id, worker_id=self.worker_id,
                                  token=claims[0].token, images=1, payload=b"x", device_state=None,
                                  compute_seconds=0.0)  # fmt: skip
                idle = IDLE_BACKOFF_START
                continue
            woken = (
                self.listener.wait(idle, self.halt)
                if self.listener is not None
                else self.halt.wait(idle)
            )
            idle = IDLE_BACKOFF_START if woken else min(idle * IDLE_BACKOFF_FACTOR, POLL_INTERVAL)

    def close(self) -> None:
        self.halt.set()
        self.join(timeout=POLL_INTERVAL + 5)
        if self.listener is not None:
            self.listener.close()
        self.db.close()


def measure(url: str, workers: int, versions: int, gap: float, notify: bool) -> list[float]:
    """Latencies (s) from each publish's commit to each worker's claim of its unit."""
    plan = SyncPlan(dataset_size=64 * workers * (versions + 2), seed=0, images_per_unit=64,
                    units_per_update=workers, micro_batch=64, epochs=1,
                    update_rule="simultaneous")  # fmt: skip
    with Database(url, max_size=2) as db:
        bench = start_run(db, MODEL, plan, Config())
        weights, optimizer_states = server_blobs(bench.state.server)
        claims: list[float] = []
        threads = [IdleWorker(url, bench.run_id, notify, claims) for _ in range(workers)]
        for thread in threads:
            thread.start()
        latencies: list[float] = []
        try:
            time.sleep(gap)  # version 0's units are claimed; everyone goes idle
            for version in range(1, versions + 1):
                claims.clear()
                run = queue.get_run(db, bench.run_id)
                with db.transaction() as tx:
                    queue.publish(
                        tx, run, version, weights=weights, optimizer_states=optimizer_states,
                        units=[Unit(i) for i in range(version * workers, (version + 1) * workers)],
                        consumed=Consumed(unit_ids=[], worker_ids=[],
                                          record=UpdateRecord.of(StepStats()),
                                          epoch=0.0, contributors=0, wait_seconds=0.0),
                    )  # fmt: skip
                published = time.perf_counter()
                deadline = published + POLL_INTERVAL + 5
                while len(claims) < workers and time.perf_counter() < deadline:
                    time.sleep(0.001)
                latencies += [c - published for c in claims]
                time.sleep(gap)
        finally:
            for thread in threads:
                thread.close()
    return latencies


def main(argv: Sequence[str] | None = None) -> None:
    """Both modes for every gap; one markdown table."""
    args = parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="ganfriends-wakeup-") as root:
        server = EmbeddedPostgres(Path(root) / "pg", durable=False)
        url = server.start().local_url()
        try:
            with Database(url, max_size=1) as db:
                migrate(db)
            for gap in args.gaps:
                for label, notify in (("LISTEN/NOTIFY + polling", True), ("polling only", False)):
                    got = measure(url, args.workers, args.versions, gap, notify)
                    ms = sorted(1000 * x for x in got)
                    rows.append((label, gap, statistics.median(ms),
                                 ms[int(0.9 * (len(ms) - 1))], ms[-1], len(ms)))  # fmt: skip
        finally:
            server.stop()
    print(f"### Publish to claim, {args.workers} idle workers, {args.versions} versions per row\n")
    print("| wake-up | idle gap s | median ms | p90 ms | max ms | claims |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, gap, median, p90, worst, count in rows:
        print(f"| {label} | {gap:g} | {median:.1f} | {p90:.1f} | {worst:.1f} | {count} |")


if __name__ == "__main__":
    main()
