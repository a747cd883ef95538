"""Local steps (``--local-steps H``) through the real CLI: a class run whose workers are killed
and whose coordinator is restarted mid-run ends with the model ``simulate`` gives (issue #22),
with the far-away class's setting: int8 uploads and int8 downloads."""

from __future__ import annotations

from ganfriends.training.history import read_history
from tests.acceptance.class_harness import ClassRoom, assert_same_model, crashed_run, simulated
from tests.conftest import requires_fashion_mnist

pytestmark = requires_fashion_mnist

# 7 steps in rounds of 3 (the last one short), an outer Nesterov step with its momentum for G
# and another learning rate for D: the outer optimizers' state crosses the restart. Uploads and
# downloads rounded to int8 (float32 transfers: the rule contract's class runs).
LOCAL = [
    "--transfer-dtype", "int8", "--download-dtype", "int8",
    "--local-steps", "3", "--outer-optimizer", "nesterov", "--outer-lr", "0.7",
    "--outer-momentum", "0.5", "--outer-lr-d", "0.5", "--images-per-work-unit", "64",
    "--workunits-per-update", "2", "--micro-batch", "32", "--max-iterations", "7",
    "--seed", "5", "--sample-interval", "100",
]  # fmt: skip


def test_a_crashed_local_steps_run_ends_with_its_simulation_s_model(room: ClassRoom) -> None:
    crashed_run(room, "class", [*LOCAL, "--work-unit-timeout", "3"], crash_at=r"version 1/")

    simulated(room, "sim", LOCAL)

    assert_same_model(room.workdir, "class", "sim")
    # One version per round of 3 local steps: 7 steps are 3 rounds, 3 rows.
    assert len(read_history(room.workdir / "sim" / "history.csv")) == 3
