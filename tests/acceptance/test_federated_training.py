"""Federated (FeGAN) runs through the real CLI: coordinator and worker processes on PostgreSQL,
and ``ganfriends simulate`` in one process with the same rule code."""

from __future__ import annotations

from tests.acceptance.class_harness import (
    ClassRoom,
    assert_same_model,
    crashed_run,
    one_worker_run,
    simulated,
)
from tests.conftest import requires_fashion_mnist

pytestmark = requires_fashion_mnist

ROUNDS = 5
FEDERATED = [
    "--mode", "federated", "--devices", "4", "--fraction", "0.5", "--local-steps", "4",
    "--batch-size", "16", "--rounds", str(ROUNDS), "--non-iid", "--magic-num", "200",
    "--weighting", "kl-exp", "--balanced-sampling", "--weak-fraction", "0.25", "--seed", "4",
    "--sample-interval", "100",
]  # fmt: skip


def test_federated_run_ends_with_the_same_model_for_any_number_of_workers_and_crashes(
    room: ClassRoom,
) -> None:
    run = [*FEDERATED, "--work-unit-timeout", "3"]
    coordinator = one_worker_run(room, "a", run)
    assert f"version {ROUNDS}/{ROUNDS}" in coordinator.output
    crashed_run(room, "b", run, crash_at=r"version 2/")
    assert_same_model(room.workdir, "a", "b")


def test_simulate_gives_the_class_run_s_model(room: ClassRoom) -> None:
    one_worker_run(room, "class", FEDERATED)
    simulated(room, "sim", FEDERATED)
    assert_same_model(room.workdir, "class", "sim")
