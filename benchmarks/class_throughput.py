"""Where a class run's time and bytes go: worker compute vs database, coordinator update cost.

Starts an embedded PostgreSQL in a temporary directory and, for the 32x32 Fashion-MNIST model and
the 64x64 CelebA DCGAN, runs a worker loop in-process (claim, weights download when the version
changes, compute with the shared step, upload) and the coordinator's update (validate, aggregate,
Adam, one publishing transaction), timing each part. It compares the database parts with the raw
speed of writing and reading one blob of the same size on the same server.

    python benchmarks/class_throughput.py [--updates 3] [--units-per-update 3] [--threads N]

Prints tables; not a test. Put the figures in your notes.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import torch

from ganfriends.classroom.payload import encode_result
from ganfriends.classroom.state import server_blobs
from ganfriends.classroom.unit_work import PublishedWeights
from ganfriends.config import Config
from ganfriends.data import DatasetFingerprint, ImageDataset
from ganfriends.db import Database
from ganfriends.models import ModelConfig, build_models
from ganfriends.rules import SyncPlan, Unit, make_rule

if (
    not __package__
):  # `python benchmarks/class_throughput.py`: make the benchmarks package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_run import embedded_database, start_run

CASES = (
    ("fashion-mnist 32x32x1", ModelConfig(image_size=32, channels=1)),
    ("celeba 64x64x3", ModelConfig(image_size=64, channels=3)),
)
IMAGES_PER_UNIT = 320
MICRO_BATCH = 64


class RandomImages(ImageDataset):
    """Random pixels: the benchmark measures time, not learning."""

    def __init__(self, size: int, image_size: int, channels: int) -> None:
        self.name, self.image_size, self.channels, self.in_memory = (
            "random",
            image_size,
            channels,
            True,
        )
        self._n = size

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.rand(self.channels, self.image_size, self.image_size) * 2 - 1

    def get_batch(self, indices: Sequence[int]) -> tuple[torch.Tensor, int]:
        return torch.rand(len(indices), self.channels, self.image_size, self.image_size) * 2 - 1, 0

    def fingerprint(self) -> DatasetFingerprint:
        return DatasetFingerprint("random", self._n, self.image_size, self.channels, "0" * 64)


def timed(bucket: dict[str, list[float]], key: str, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    bucket[key].append(time.perf_counter() - start)
    return out


def bench_case(
    db: Database, model: ModelConfig, updates: int, per_update: int
) -> dict[str, object]:
    config = Config()
    config.coordinator.keep_last_versions = 2
    dataset = RandomImages(IMAGES_PER_UNIT * per_update * updates, model.image_size, model.channels)
    plan = SyncPlan(
        dataset_size=len(dataset),
        seed=0,
        images_per_unit=IMAGES_PER_UNIT,
        units_per_update=per_update,
        micro_batch=MICRO_BATCH,
        epochs=1,
        max_updates=updates,
        update_rule="simultaneous",
    )
    bench = start_run(db, model, plan, config)
    run_id, worker_id, coordinator, state = (
        bench.run_id, bench.worker_id, bench.coordinator, bench.state,
    )  # fmt: skip
    generator, discriminator = build_models(model)
    published = PublishedWeights(generator, discriminator)
    rule = make_rule("sync", plan, config, model)
    times: dict[str, list[float]] = defaultdict(list)
    upload_bytes: list[int] = []
    download_bytes = 0
    for _ in range(updates):
        for i in range(per_update):
            claim = timed(
                times, "claim", db.fetch_one, "claim_unit", run_id=run_id, worker_id=worker_id
            )
            assert claim is not None
            if published.version != claim["version"]:
                stored = db.fetch_one("get_weights", run_id=run_id, version=claim["version"])
                assert stored is not None
                download_bytes += len(stored["generator"]) + len(stored["discriminator"])
                timed(times, "weights download", published.load, db, run_id, claim["version"])
            else:
                published.load(db, run_id, claim["version"])
            result = timed(
                times,
                "compute",
                rule.compute,
                generator,
                discriminator,
                dataset,
                Unit(int(claim["unit_index"])),
                device=torch.device("cpu"),
                device_state=None,
            )
            payload = timed(times, "encode", encode_result, result)
            upload_bytes.append(len(payload))
            timed(
                times,
                "upload",
                db.fetch_one,
                "submit_result",
                run_id=run_id,
                worker_id=worker_id,
                token=claim["token"],
                images=result.images,
                payload=payload,
                device_state=None,
                compute_seconds=0.0,
            )
            if i < per_update - 1:  # the coordinator reads each upload as it arrives
                timed(times, "coordinator read (waiting)", coordinator.validated_results, state)
        results = timed(times, "coordinator validate", coordinator.validated_results, state)
        assert results is not None
        timed(times, "coordinator aggregate+publish", coordinator.apply_update, state, results, 0.0)
        timed(times, "vacuum (after publishing)", coordinator.reclaim)

    # Raw speed of one blob of the upload's size on the same server: write, then read it back.
    blob = bytes(upload_bytes[0])
    raw: dict[str, list[float]] = defaultdict(list)
    for i in range(3):
        timed(
            raw,
            "raw write",
            db.execute,
            "insert_weights",
            run_id=run_id,
            version=10_000 + i,
            generator=blob,
            discriminator=b"",
            generator_download=None,
            discriminator_download=None,
        )
        timed(raw, "raw read", db.fetch_one, "get_weights", run_id=run_id, version=10_000 + i)
    # The raw reads and writes one update must do, with the same sizes and statements: read its
    # K uploads, write the new weights, replace the optimizer states (the yardstick for
    # the coordinator's busy time).
    weights, optimizer_states = server_blobs(state.server)
    for i in range(3):
        start = time.perf_counter()
        for _ in range(per_update):
            db.fetch_one("get_weights", run_id=run_id, version=10_000 + i)
        db.execute("insert_weights", run_id=run_id, version=20_000 + i,
                   generator=weights.generator, discriminator=weights.discriminator,
                   generator_download=None, discriminator_download=None)  # fmt: skip
        db.execute("upsert_optimizer_states", run_id=run_id, version=20_000 + i,
                   generator=optimizer_states.generator,
                   discriminator=optimizer_states.discriminator)  # fmt: skip
        raw["raw update I/O"].append(time.perf_counter() - start)
    units = updates * per_update
    return {
        "times": times,
        "raw": raw,
        "upload_mb": statistics.mean(upload_bytes) / 1e6,
        "bytes_per_image": (sum(upload_bytes) + download_bytes) / (units * IMAGES_PER_UNIT),
        "download_mb": download_bytes / updates / 1e6,
    }


def print_case(name: str, r: dict[str, object], units: int) -> None:
    times, raw = r["times"], r["raw"]
    assert isinstance(times, dict) and isinstance(raw, dict)
    print(
        f"## {name}: upload {r['upload_mb']:.1f} MB per unit, weights "
        f"{r['download_mb']:.1f} MB per version, "
        f"{r['bytes_per_image'] / 1e3:.1f} kB moved per image trained"  # type: ignore[operator]
    )
    print(f"| {'part':<32} | {'median ms':>9} | {'share of unit':>13} |")
    print(f"|{'-' * 34}|{'-' * 11}|{'-' * 15}|")
    per_unit = ("claim", "weights download", "compute", "encode", "upload")
    unit_total = sum(sum(times[k]) / units for k in per_unit)
    for key in (
        *per_unit,
        "coordinator read (waiting)",
        "coordinator validate",
        "coordinator aggregate+publish",
        "vacuum (after publishing)",
    ):
        share = f"{100 * sum(times[key]) / units / unit_total:.0f}%" if key in per_unit else ""
        print(f"| {key:<32} | {1000 * statistics.median(times[key]):>9.1f} | {share:>13} |")
    for key in ("raw write", "raw read"):
        label = key + " (one blob, same size)"
        print(f"| {label:<32} | {1000 * statistics.median(raw[key]):>9.1f} | {'':>13} |")
    busy = [a + b for a, b in zip(times["coordinator validate"],
                                  times["coordinator aggregate+publish"], strict=True)]  # fmt: skip
    io = statistics.median(raw["raw update I/O"])
    print(f"| {'raw I/O of one update':<32} | {1000 * io:>9.1f} | {'':>13} |")
    print(
        f"\ncoordinator busy per update, from the last upload to the next version published: "
        f"{1000 * statistics.median(busy):.0f} ms = "
        f"{statistics.median(busy) / io:.2f}x the raw reads and writes of an update "
        "(goal <= 1.5x)"
    )
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=3)
    parser.add_argument("--units-per-update", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"units of {IMAGES_PER_UNIT} images, micro-batch {MICRO_BATCH}, "
        f"{args.units_per_update} units per update, {args.updates} updates\n"
    )
    with embedded_database("gf-bench-") as db:
        for name, model in CASES:
            result = bench_case(db, model, args.updates, args.units_per_update)
            print_case(name, result, args.updates * args.units_per_update)


if __name__ == "__main__":
    main()
