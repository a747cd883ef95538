"""A fast worker claims several units at once and uploads them in one call, without changing
the math: the run ends with the very bits that workers taking one unit at a time give
(issue #12, item 3)."""

from __future__ import annotations

from tests.acceptance.class_harness import ClassRoom, assert_same_model
from tests.conftest import requires_fashion_mnist

pytestmark = requires_fashion_mnist

RUN = [
    "--images-per-work-unit", "32", "--workunits-per-update", "4", "--micro-batch", "32",
    "--max-iterations", "2", "--seed", "3", "--sample-interval", "100",
]  # fmt: skip


def test_a_worker_claiming_four_units_at_once_ends_with_the_one_at_a_time_model(
    room: ClassRoom,
) -> None:
    # Prepare: a run computed by two workers, one unit per claim.
    one = room.coordinator("one", *RUN)
    singles = [room.worker(f"single{i}") for i in range(2)]
    assert one.finish() == 0, one.output
    for worker in singles:
        assert worker.finish() == 0, worker.output

    # Execute: the same run computed by one worker claiming the version's four units at once.
    many = room.coordinator("many", *RUN)
    fast = room.worker("fast", "--units-per-claim", "4")
    assert many.finish() == 0, many.output
    assert fast.finish() == 0, fast.output

    # Assert: every claim held four units and went up in one call; the models are bit-identical.
    assert fast.output.count("Uploading 4 results...") == 4  # 2 steps x (D, G) versions
    assert "Uploading..." not in fast.output
    assert_same_model(room.workdir, "many", "one")
