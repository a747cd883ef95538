"""One schedule for every mode: a class run of K units of U images per step, micro-batch M and
seed S ends with the model ``train-local --batch-size K*U --micro-batch M --seed S`` gives, with
the same update rule, whatever the number of workers (issue #12, item 2)."""

from __future__ import annotations

import pytest

from tests.acceptance.class_harness import TINY, ClassRoom, assert_same_model, simulated
from tests.acceptance.conftest import run_cli
from tests.conftest import requires_fashion_mnist

pytestmark = requires_fashion_mnist

UNIT, UNITS, MICRO, STEPS, SEED = 64, 2, 32, 3, 5


@pytest.mark.parametrize("rule", ["alternating", "simultaneous"])
def test_a_class_run_ends_with_the_model_train_local_gives(room: ClassRoom, rule: str) -> None:
    coordinator = room.coordinator(
        "class",
        "--images-per-work-unit", str(UNIT), "--workunits-per-update", str(UNITS),
        "--micro-batch", str(MICRO), "--max-iterations", str(STEPS), "--seed", str(SEED),
        "--update-rule", rule, "--sample-interval", "100",
    )  # fmt: skip
    workers = [room.worker(f"w{i}") for i in range(2)]
    assert coordinator.finish() == 0, coordinator.output
    for worker in workers:
        assert worker.finish() == 0, worker.output

    local = run_cli(
        [
            "train-local", "--output-dir", "local", *TINY,
            "--batch-size", str(UNIT * UNITS), "--micro-batch", str(MICRO),
            "--max-steps", str(STEPS), "--seed", str(SEED), "--update-rule", rule,
        ],
        cwd=room.workdir,
    )  # fmt: skip
    assert local.returncode == 0, local.stdout + local.stderr

    # Weights and BatchNorm buffers alike (the class chains buffers over its units).
    assert_same_model(room.workdir, "class", "local", rtol=1e-5, atol=1e-6)


def test_two_phases_of_an_alternating_step_count_its_images_once(room: ClassRoom) -> None:
    coordinator = room.coordinator(
        "class",
        "--images-per-work-unit", str(UNIT), "--workunits-per-update", str(UNITS),
        "--micro-batch", str(MICRO), "--max-iterations", "2", "--update-rule", "alternating",
    )  # fmt: skip
    worker = room.worker("solo")
    assert coordinator.finish() == 0, coordinator.output
    assert worker.finish() == 0, worker.output
    status = room.status()
    assert status["version"] == 4  # a D version and a G version per step
    assert status["images_seen"] == 2 * UNIT * UNITS
    solo = next(w for w in status["workers"] if w["name"] == "solo")
    assert solo["units"] == 8  # it computed both phases of both steps


def test_a_bfloat16_class_run_gives_its_simulation_s_model(room: ClassRoom) -> None:
    # Rounded gradients keep a run deterministic: two workers through the database combine
    # exactly what one process simulating the run combines.
    run = [
        "--images-per-work-unit", str(UNIT), "--workunits-per-update", str(UNITS),
        "--micro-batch", str(MICRO), "--max-iterations", str(STEPS), "--seed", str(SEED),
        "--transfer-dtype", "bfloat16", "--sample-interval", "100",
    ]  # fmt: skip
    coordinator = room.coordinator("class", *run)
    workers = [room.worker(f"w{i}") for i in range(2)]
    assert coordinator.finish() == 0, coordinator.output
    for worker in workers:
        assert worker.finish() == 0, worker.output

    simulated(room, "sim", run)
    assert_same_model(room.workdir, "class", "sim", rtol=1e-5, atol=1e-6)
