"""MD-GAN runs through the real CLI (coordinator and workers on PostgreSQL) and in one process.

A folder of 64 generated images keeps the shards small, so the discriminators swap every 4
iterations: swaps happen inside these short runs, while other devices' units are in flight.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.acceptance.class_harness import TINY, ClassRoom
from tests.acceptance.test_federated_training import assert_same_weights

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
    run = mdgan_flags(images)
    # Run A: one worker.
    coordinator = room.coordinator("a", *run, "--work-unit-timeout", "3")
    room.worker("solo", "--dataset-path", str(images))
    assert coordinator.finish() == 0, coordinator.output
    assert "swaps every 4 iterations" in coordinator.output

    # Run B: two workers, one killed mid-iteration, the coordinator killed and restarted.
    coordinator = room.coordinator("b", *run, "--work-unit-timeout", "3", "--new-run")
    victim = room.worker("victim", "--dataset-path", str(images))
    room.worker("steady", "--dataset-path", str(images))
    victim.wait_for("Processing work unit")
    victim.popen.send_signal(signal.SIGKILL)
    coordinator.wait_for(r"version 5/")
    coordinator.popen.send_signal(signal.SIGKILL)
    coordinator.popen.wait()
    restarted = room.coordinator("b", *run, "--work-unit-timeout", "3")
    restarted.wait_for("resuming run")
    assert restarted.finish() == 0, restarted.output

    assert_same_weights(
        room.workdir / "a" / "checkpoints" / "latest.pt",
        room.workdir / "b" / "checkpoints" / "latest.pt",
    )


def test_md_gan_simulate_gives_the_class_run_s_model(room: ClassRoom, images: Path) -> None:
    run = mdgan_flags(images)
    coordinator = room.coordinator("class", *run)
    room.worker("solo", "--dataset-path", str(images))
    assert coordinator.finish() == 0, coordinator.output

    result = subprocess.run(
        [sys.executable, "-m", "ganfriends", "simulate", *run, *TINY, "--device", "cpu",
         "--output-dir", "sim"],
        cwd=room.workdir, env=room.env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    assert_same_weights(
        room.workdir / "class" / "checkpoints" / "latest.pt",
        room.workdir / "sim" / "checkpoints" / "latest.pt",
    )
