"""Bytes a worker moves per image trained, counted on the wire (issue 22).

Starts an embedded PostgreSQL in a temporary directory and creates an alternating sync run of the
class default (Fashion-MNIST's 32x32 DCGAN: G 4.3 MB, D 2.6 MB in float32) with K units of 320
images per step. One worker, logged in as a student role, reaches the server through
:class:`~benchmarks.latency_proxy.DelayProxy` (no delay), which counts every byte of its
connections each way; the coordinator connects directly. The worker claims all K units of each
version, computes them with its real session (random pixels: the bytes do not depend on them),
uploads them in one call, and the coordinator combines them in this process.

The first step is left out (its first version downloads both networks whatever the worker held);
the next ``--steps`` are counted, over the K * 320 images each step trains on.

    python benchmarks/wire_bytes.py [--steps 2] [--units 3] [--transfer-dtype float32 int8 ...]

Runs on a checkout without changed-only downloads too (compare PYTHONPATH=<that>/src). Prints a
table; not a test.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from psycopg.conninfo import make_conninfo
from rich.console import Console

from ganfriends.classroom import queue
from ganfriends.classroom.coordinator import Coordinator
from ganfriends.classroom.state import create_run, load_run_state
from ganfriends.classroom.unit_work import WorkSession
from ganfriends.config import Config
from ganfriends.db import Database, EmbeddedPostgres, migrate
from ganfriends.db.server import APP_DATABASE
from ganfriends.db.students import add_student
from ganfriends.models import ModelConfig
from ganfriends.rules import SyncPlan

if not __package__:  # run by path, as `python benchmarks/NAME.py`: import the package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.class_throughput import RandomImages
from benchmarks.latency_proxy import DelayProxy

MODEL = ModelConfig(image_size=32, channels=1)  # the class default: Fashion-MNIST's DCGAN
IMAGES_PER_UNIT = 320
MICRO_BATCH = 64


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2, help="steps counted (default 2)")
    parser.add_argument("--units", type=int, default=3, help="units per step, K (default 3)")
    parser.add_argument(
        "--transfer-dtype", nargs="+", default=["float32"], help="each a case (default float32)"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    return parser.parse_args(argv)


def case(
    db: Database, student_url: str, proxy: DelayProxy, transfer: str, steps: int, units: int
) -> dict[str, float]:
    """One run of ``steps + 1`` alternating steps; the worker's bytes up and down per image over
    the last ``steps``."""
    config = Config()
    config.coordinator.transfer_dtype = transfer
    config.coordinator.sample_interval = 10**9
    config.coordinator.max_units_per_claim = units
    dataset = RandomImages(IMAGES_PER_UNIT * units * (steps + 1), MODEL.image_size, MODEL.channels)
    plan = SyncPlan(dataset_size=len(dataset), seed=0, images_per_unit=IMAGES_PER_UNIT,
                    units_per_update=units, micro_batch=MICRO_BATCH, epochs=1,
                    max_updates=steps + 1, update_rule="alternating")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="ganfriends-wire-") as out:
        config.coordinator.output_dir = out
        with db.transaction() as tx:
            run_id = create_run(
                tx, name=f"wire-{transfer}", mode="sync", config=config.to_dict(),
                model_config=MODEL, fingerprint=dataset.fingerprint().to_dict(), plan=plan,
                lease_seconds=600, max_backups=0, max_units_per_claim=units,
            )  # fmt: skip
        coordinator = Coordinator(db, config, console=Console(file=io.StringIO()))
        state = load_run_state(db, run_id)
        with Database(student_url, max_size=2) as worker_db:
            worker_id = queue.register_worker(
                worker_db, run_id, "wire", "bench", queue.Hardware("cpu", None, None, 1, None)
            )
            work = WorkSession.open(queue.get_run(worker_db, run_id), dataset, torch.device("cpu"))
            start = dict(proxy.sent)
            started = time.perf_counter()
            while state.version < plan.total_versions:
                if state.version == plan.versions_per_step:  # the first step is left out
                    start, started = dict(proxy.sent), time.perf_counter()
                outgoing = []
                for claim in queue.claim(worker_db, run_id, worker_id, units):
                    inputs = work.load_version(worker_db, claim)
                    computed = work.compute(claim, inputs=inputs, device_state=None)
                    outgoing.append(computed.outgoing)
                queue.submit(worker_db, run_id, worker_id, outgoing)
                valid = coordinator.validated_results(state)
                assert valid is not None, f"version {state.version} was refused"
                coordinator.apply_update(state, valid, 0.0)
            seconds = time.perf_counter() - started
            images = steps * units * IMAGES_PER_UNIT
            up, down = (proxy.sent[k] - start[k] for k in ("up", "down"))
    return {"up": up / images, "down": down / images, "seconds": seconds}


def main(argv: Sequence[str] | None = None) -> None:
    """Every transfer dtype; one markdown table."""
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory(prefix="ganfriends-wire-pg-") as root:
        embedded = EmbeddedPostgres(Path(root) / "pg")
        info = embedded.start()
        assert info.socket_dir is not None
        try:
            with (
                Database(info.local_url(), max_size=2) as db,
                DelayProxy(info.socket_dir / f".s.PGSQL.{info.port}", 0.0) as proxy,
            ):
                migrate(db)
                password = add_student(info.admin_url(APP_DATABASE), "wire_student")
                student_url = make_conninfo(
                    info.local_url(), user="wire_student", password=password,
                    host="127.0.0.1", port=proxy.port,
                )  # fmt: skip
                for transfer in args.transfer_dtype:
                    Console(stderr=True).print(f"--transfer-dtype {transfer} ...")
                    rows.append((transfer, case(db, student_url, proxy, transfer, args.steps,
                                                args.units)))  # fmt: skip
        finally:
            embedded.stop()
    print(f"### One worker taking all {args.units} units of {IMAGES_PER_UNIT} images of each "
          f"version, alternating rule, 32x32 DCGAN, {args.steps} steps counted\n")  # fmt: skip
    print("| transfer dtype | up kB/image | down kB/image | total kB/image | s per step |")
    print("|---|---:|---:|---:|---:|")
    for transfer, r in rows:
        print(
            f"| {transfer} | {r['up'] / 1e3:.1f} | {r['down'] / 1e3:.1f} | "
            f"{(r['up'] + r['down']) / 1e3:.1f} | {r['seconds'] / args.steps:.1f} |"
        )


if __name__ == "__main__":
    main()
