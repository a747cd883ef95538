from __future__ import annotations

import pytest

from ganfriends.classroom.status import RunStatus, WorkerLine, activity


@pytest.mark.parametrize(
    ("seconds", "running", "expected"),
    [(5, True, "Active"), (59.9, True, "Active"), (60, True, "Idle"), (299, True, "Idle"),
     (300, True, "Offline"), (5, False, "Offline")],
)  # fmt: skip
def test_activity_follows_the_seed_dashboard_rule(
    seconds: float, running: bool, expected: str
) -> None:
    assert activity(seconds, running) == expected


def status(units: dict[str, int], active: int, state: str = "running") -> RunStatus:
    workers = [WorkerLine(f"w{i}", 0, 0, 0, "Active", "-", "cpu") for i in range(active)]
    return RunStatus(run_id=1, name="r", state=state, version=1, total_updates=9, epoch=0.1,
                     epochs=1, images_seen=0, units=units, images_per_second=0.0, d_loss=None,
                     g_loss=None, d_real=None, d_fake=None, workers=workers)  # fmt: skip


def test_active_workers_beyond_the_claimed_units_wait_for_work() -> None:
    assert (
        status({"pending": 0, "claimed": 2, "expired": 0, "done": 1}, active=5).waiting_workers == 3
    )


def test_nobody_waits_while_units_are_pending_or_the_run_is_over() -> None:
    assert status({"pending": 1, "claimed": 2, "expired": 0, "done": 0}, 5).waiting_workers == 0
    assert (
        status({"pending": 0, "claimed": 0, "expired": 0, "done": 0}, 5, "complete").waiting_workers
        == 0
    )


def test_an_alternating_run_reports_its_steps_and_versions() -> None:
    run = status({"pending": 0, "claimed": 0, "expired": 0, "done": 0}, 0)
    run.version, run.total_updates, run.versions_per_step = 7, 12, 2

    assert run.progress == "step 3/6 (version 7/12)"


def test_a_run_of_one_version_per_step_reports_its_versions() -> None:
    run = status({"pending": 0, "claimed": 0, "expired": 0, "done": 0}, 0)

    assert run.progress == "version 1/9"
