from __future__ import annotations

import pytest

from ganfriends.classroom.status import activity


@pytest.mark.parametrize(
    ("seconds", "running", "expected"),
    [(5, True, "Active"), (59.9, True, "Active"), (60, True, "Idle"), (299, True, "Idle"),
     (300, True, "Offline"), (5, False, "Offline")],
)  # fmt: skip
def test_activity_follows_the_seed_dashboard_rule(
    seconds: float, running: bool, expected: str
) -> None:
    assert activity(seconds, running) == expected
