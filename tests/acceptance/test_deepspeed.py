"""train-local --strategy deepspeed under the real ``torchrun``: 2 gloo processes whose G and D
step through DeepSpeed engines equal one process whose micro-batches are their shares, and the
checkpoint they write is the plain one (resumed in one process, resumed by DeepSpeed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ganfriends.training.history import read_history
from tests.acceptance.conftest import run_cli
from tests.acceptance.test_torchrun import RUN, assert_same_model, checkpoint, torchrun
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
    one = run_cli(
        [*RUN, "--update-rule", rule, "--micro-batch", "4", "--output-dir", "one"], workdir
    )
    assert one.returncode == 0, one.stderr
    two = torchrun([*RUN, *DEEPSPEED, "--update-rule", rule, "--output-dir", "two"], workdir)
    assert two.returncode == 0, two.stderr

    assert_same_model(workdir / "one", workdir / "two")
    assert "2 processes (gloo) through DeepSpeed engines" in two.stdout
    assert two.stdout.count("done: step 3") == 1
    rows = read_history(workdir / "two" / "history.csv")
    assert [r["images_seen"] for r in rows] == ["8", "16", "24"]
    assert "module." not in "".join(checkpoint(workdir / "two")["generator_state_dict"])


def test_a_deepspeed_checkpoint_resumes_in_one_process_and_deepspeed_resumes_one(
    workdir: Path,
) -> None:
    straight = run_cli(
        [*RUN, "--micro-batch", "4", "--max-steps", "4", "--output-dir", "ref"], workdir
    )
    assert straight.returncode == 0, straight.stderr

    # DeepSpeed for 2 steps, then one process: the plain checkpoint and its Adam state continue.
    first = torchrun([*RUN, *DEEPSPEED, "--max-steps", "2", "--output-dir", "a"], workdir)
    assert first.returncode == 0, first.stderr
    rest = run_cli(
        ["train-local", "--resume", "a/checkpoints/latest.pt", "--output-dir", "a",
         "--max-steps", "4"], workdir,
    )  # fmt: skip
    assert rest.returncode == 0, rest.stderr
    assert_same_model(workdir / "ref", workdir / "a")
    drawn = run_cli(["generate", "--checkpoint", "a/checkpoints/latest.pt", "--num", "4"], workdir)
    assert drawn.returncode == 0, drawn.stderr

    # One process for 2 steps, then DeepSpeed: its engines wrap the resumed Adam state.
    first = run_cli([*RUN, "--micro-batch", "4", "--max-steps", "2", "--output-dir", "b"], workdir)
    assert first.returncode == 0, first.stderr
    rest = torchrun(
        ["train-local", *DEEPSPEED, "--resume", "b/checkpoints/latest.pt", "--output-dir", "b",
         "--max-steps", "4"], workdir,
    )  # fmt: skip
    assert rest.returncode == 0, rest.stderr
    assert_same_model(workdir / "ref", workdir / "b")
    assert [int(r["step"]) for r in read_history(workdir / "b" / "history.csv")] == [1, 2, 3, 4]
