"""``worker --gpus``: which GPUs, and the command line each child gets."""

from __future__ import annotations

import sys

import pytest

from ganfriends.classroom.gpu_workers import child_commands, parse_gpus
from ganfriends.errors import GanError


def test_all_means_every_gpu_and_a_list_picks_some() -> None:
    assert parse_gpus("all", 3) == [0, 1, 2]
    assert parse_gpus("2,0", 3) == [2, 0]


@pytest.mark.parametrize("spec", ["3", "0,0", "x", "-1", ","])
def test_gpus_that_are_not_there_are_refused(spec: str) -> None:
    with pytest.raises(GanError, match="--gpus"):
        parse_gpus(spec, 2)


def test_a_machine_without_gpus_is_told_to_run_one_worker() -> None:
    with pytest.raises(GanError, match="this machine has none"):
        parse_gpus("all", 0)


def test_each_child_gets_its_gpu_and_name_and_the_rest_of_the_options() -> None:
    argv = ["worker", "--gpus", "all", "--db", "postgresql://x", "--device=cpu", "--name", "ada",
            "--stop-grace", "3"]  # fmt: skip
    commands = child_commands(argv, [0, 1], "ada")
    base = [sys.executable, "-m", "ganfriends", "worker", "--db", "postgresql://x",
            "--stop-grace", "3"]  # fmt: skip
    assert commands == [
        [*base, "--device", "cuda:0", "--name", "ada-gpu0"],
        [*base, "--device", "cuda:1", "--name", "ada-gpu1"],
    ]
