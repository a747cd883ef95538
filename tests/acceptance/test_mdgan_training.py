"""MD-GAN runs through the real CLI (coordinator and workers on PostgreSQL) and in one process.

A folder of 64 generated images keeps the shards small, so the discriminators swap every 4
iterations: swaps happen inside these short runs, while other devices' units are in flight.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.acceptance.class_harness import (
    ClassRoom,
    assert_same_model,
    crashed_run,
    one_worker_run,
    simulated,
)

ITERATIONS = 10


@pytest.fixture
def images(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(64):
        pixels = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:03d}.png")
    return folder


def mdgan_flags(images: Path) -> list[str]:
    return [
        "--mode", "md-gan", "--devices", "2", "--batch-size", "8", "--k", "2",
        "--disc-steps", "2", "--iterations", str(ITERATIONS), "--seed", "3",
        "--dataset", "folder", "--dataset-path", str(images), "--image-size", "32",
        "--sample-interval", "100",
    ]  # fmt: skip


def test_md_gan_ends_with_the_same_model_for_any_number_of_workers_and_crashes(
    room: ClassRoom, images: Path
) -> None:
    run = [*mdgan_flags(images), "--work-unit-timeout", "3"]
    data = ("--dataset-path", str(images))
    coordinator = one_worker_run(room, "a", run, *data)
    assert "swaps every 4 iterations" in coordinator.output
    crashed_run(room, "b", run, crash_at=r"version 5/", worker_args=data)
    assert_same_model(room.workdir, "a", "b")


def test_md_gan_simulate_gives_the_class_run_s_model(room: ClassRoom, images: Path) -> None:
    run = mdgan_flags(images)
    one_worker_run(room, "class", run, "--dataset-path", str(images))
    simulated(room, "sim", run)
    assert_same_model(room.workdir, "class", "sim")
