"""train-local --strategy deepspeed under the real ``torchrun``: 2 gloo processes whose G and D
step through DeepSpeed engines equal one process whose micro-batches are their shares, and the
checkpoint they write is the plain one (resumed in one process, resumed by DeepSpeed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.acceptance.test_torchrun import drawn_from, resume_both_ways, two_processes_equal_one
from tests.acceptance.test_torchrun import pytestmark as torchrun_marks

pytest.importorskip(
    "deepspeed", reason="--strategy deepspeed needs the deepspeed extra (make install has it)"
)

pytestmark = [*torchrun_marks, pytest.mark.slow]

DEEPSPEED = ["--strategy", "deepspeed"]


@pytest.mark.parametrize("rule", ["alternating", "simultaneous"])
def test_two_deepspeed_processes_equal_one_process_with_their_micro_batches(
    workdir: Path, rule: str
) -> None:
    two = two_processes_equal_one(workdir, rule, *DEEPSPEED)
    assert "2 processes (gloo) through DeepSpeed engines" in two.stdout


def test_a_deepspeed_checkpoint_resumes_in_one_process_and_deepspeed_resumes_one(
    workdir: Path,
) -> None:
    # The plain checkpoint and its Adam state continue in one process; DeepSpeed's engines wrap
    # a resumed Adam state.
    resume_both_ways(workdir, *DEEPSPEED)
    drawn_from(workdir, "a")
