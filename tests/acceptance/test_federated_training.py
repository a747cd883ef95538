"""Federated (FeGAN) runs through the real CLI: coordinator and worker processes on PostgreSQL,
and ``ganfriends simulate`` in one process with the same rule code."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import torch

from tests.acceptance.class_harness import TINY, ClassRoom, final_weights
from tests.conftest import requires_fashion_mnist

pytestmark = requires_fashion_mnist

ROUNDS = 5
FEDERATED = [
    "--mode", "federated", "--devices", "4", "--fraction", "0.5", "--local-steps", "4",
    "--batch-size", "16", "--rounds", str(ROUNDS), "--non-iid", "--magic-num", "200",
    "--weighting", "kl-exp", "--balanced-sampling", "--weak-fraction", "0.25", "--seed", "4",
    "--sample-interval", "100",
]  # fmt: skip


def assert_same_weights(a: Path, b: Path) -> None:
    first, second = dict(final_weights(a)), dict(final_weights(b))
    assert first.keys() == second.keys()
    for name, tensor in first.items():
        assert torch.equal(tensor, second[name]), name


def test_federated_run_ends_with_the_same_model_for_any_number_of_workers_and_crashes(
    room: ClassRoom,
) -> None:
    # Run A: one worker.
    coordinator = room.coordinator("a", *FEDERATED, "--work-unit-timeout", "3")
    room.worker("solo")
    assert coordinator.finish() == 0, coordinator.output
    assert f"version {ROUNDS}/{ROUNDS}" in coordinator.output

    # Run B: two workers, one killed mid-unit, the coordinator killed mid-run and restarted.
    coordinator = room.coordinator("b", *FEDERATED, "--work-unit-timeout", "3", "--new-run")
    victim = room.worker("victim")
    room.worker("steady")
    victim.wait_for("Processing work unit")
    victim.popen.send_signal(signal.SIGKILL)
    coordinator.wait_for(r"version 2/")
    coordinator.popen.send_signal(signal.SIGKILL)
    coordinator.popen.wait()
    restarted = room.coordinator("b", *FEDERATED, "--work-unit-timeout", "3")
    restarted.wait_for("resuming run")
    assert restarted.finish() == 0, restarted.output

    assert_same_weights(
        room.workdir / "a" / "checkpoints" / "latest.pt",
        room.workdir / "b" / "checkpoints" / "latest.pt",
    )


def test_simulate_gives_the_class_run_s_model(room: ClassRoom) -> None:
    coordinator = room.coordinator("class", *FEDERATED)
    room.worker("solo")
    assert coordinator.finish() == 0, coordinator.output

    result = subprocess.run(
        [sys.executable, "-m", "ganfriends", "simulate", *FEDERATED, *TINY, "--device", "cpu",
         "--output-dir", "sim"],
        cwd=room.workdir, env=room.env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    assert_same_weights(
        room.workdir / "class" / "checkpoints" / "latest.pt",
        room.workdir / "sim" / "checkpoints" / "latest.pt",
    )
    history = (room.workdir / "sim" / "history.csv").read_text().splitlines()
    assert len(history) == 1 + ROUNDS and "bytes_up" in history[0]
    assert (room.workdir / "sim" / "samples" / "latest.png").is_file()


def test_straggler_round_closes_with_a_quorum_and_its_late_delta_is_refused(
    room: ClassRoom,
) -> None:
    # The full-width model and 20 local steps: a unit takes seconds, so the frozen worker is
    # surely mid-unit. No backup copies and a long lease: only the round timeout can close a
    # round without the frozen worker's unit.
    coordinator = room.start(
        "coordinator",
        ["coordinator", "--output-dir", "run", "--mode", "federated", "--devices", "4",
         "--fraction", "0.5", "--local-steps", "20", "--batch-size", "64", "--rounds", "2",
         "--round-timeout", "3", "--max-backups", "0", "--work-unit-timeout", "300"],
    )  # fmt: skip
    frozen = room.worker("frozen")
    frozen.wait_for("Processing work unit")
    frozen.popen.send_signal(signal.SIGSTOP)
    room.worker("steady")

    coordinator.wait_for(r"closing with 2 of 3 units", timeout=180)
    frozen.popen.send_signal(signal.SIGCONT)

    frozen.wait_for("was not needed any more", timeout=120)
    assert coordinator.finish(timeout=300) == 0, coordinator.output
