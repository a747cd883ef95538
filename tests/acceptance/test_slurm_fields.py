"""``ganfriends slurm`` refuses, in one line, a field that would run commands in the script."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.acceptance.conftest import run_cli

EXPECTED = {
    "--job-name": "a job name (letters, digits, . _ + -)",
    "--time": "a Slurm time limit (MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS or UNLIMITED)",
    "--modules": "module names separated by spaces (letters, digits, . _ + / -)",
}


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--job-name", "gan\nid"), ("--time", "01:00:00;id"), ("--modules", "CUDA/12 $(id)")],
)
def test_a_hostile_sbatch_field_is_one_line_and_exit_1(
    flag: str, value: str, workdir: Path
) -> None:
    result = run_cli(["slurm", flag, value, "--", "train-local", "--epochs", "1"], workdir)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"error: {flag} {value!r} is not {EXPECTED[flag]}"]
    assert result.stdout == "" and not (workdir / "ganfriends.sbatch").exists()
