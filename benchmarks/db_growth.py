"""Database size over a long class run: storage must stay bounded, not grow per update.

Drives N updates (default 200) of a real coordinator on an embedded PostgreSQL, with an in-process
worker that uploads random (valid) gradients instead of computing them — the bytes written are
exactly those of a real run, only faster. Prints the database size and the table sizes every 50
updates and at the end. The seed project kept ~76 MB per iteration forever.

    python benchmarks/db_growth.py [--updates 200] [--model 32|64]

Prints a table; not a test.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from ganfriends.classroom.payload import encode_result
from ganfriends.config import Config
from ganfriends.models import ModelConfig, build_models
from ganfriends.rules import SyncPlan
from ganfriends.rules.sync import collect_gradients
from ganfriends.step import StepStats

if not __package__:  # run by path, as `python benchmarks/NAME.py`: import the package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_run import embedded_database, start_run

IMAGES_PER_UNIT = 320
UNITS_PER_UPDATE = 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=200)
    parser.add_argument("--model", type=int, choices=(32, 64), default=32)
    args = parser.parse_args()
    model = (
        ModelConfig(image_size=32, channels=1)
        if args.model == 32
        else ModelConfig(image_size=64, channels=3)
    )
    config = Config()  # retention defaults: the newest 3 versions and every 100th
    plan = SyncPlan(
        dataset_size=60_000,
        seed=0,
        images_per_unit=IMAGES_PER_UNIT,
        units_per_update=UNITS_PER_UPDATE,
        micro_batch=64,
        epochs=50,
        max_updates=args.updates,
        update_rule="simultaneous",
    )
    generator, discriminator = build_models(model)
    with embedded_database("gf-growth-") as db:
        bench = start_run(db, model, plan, config)
        run_id, worker_id = bench.run_id, bench.worker_id
        coordinator, state = bench.coordinator, bench.state
        start = time.perf_counter()
        print(
            f"{args.model}x{args.model} model, {UNITS_PER_UPDATE} units of "
            f"{IMAGES_PER_UNIT} images per update\n"
        )
        print(f"| {'updates':>7} | {'database MB':>11} | {'seconds':>7} |")
        print(f"|{'-' * 9}|{'-' * 13}|{'-' * 9}|")
        for update in range(1, args.updates + 1):
            for _ in range(UNITS_PER_UPDATE):
                claim = db.fetch_one("claim_unit", run_id=run_id, worker_id=worker_id)
                assert claim is not None
                for module in (generator, discriminator):
                    for p in module.parameters():
                        p.grad = torch.randn_like(p) * 1e-3
                result = collect_gradients(
                    generator, discriminator, StepStats(IMAGES_PER_UNIT, 1.0, 1.0, 0.5, 0.5)
                )
                db.fetch_one(
                    "submit_result",
                    run_id=run_id,
                    worker_id=worker_id,
                    token=claim["token"],
                    images=IMAGES_PER_UNIT,
                    payload=encode_result(result),
                    device_state=None,
                    compute_seconds=0.0,
                )
            results = coordinator.validated_results(state)
            assert results is not None
            coordinator.apply_update(state, results, 0.0)
            coordinator.reclaim()
            if update % 50 == 0 or update == args.updates:
                size = db.fetch_one("database_size")
                assert size is not None
                print(
                    f"| {update:>7} | {size['bytes'] / 1e6:>11.1f} | "
                    f"{time.perf_counter() - start:>7.0f} |"
                )


if __name__ == "__main__":
    main()
