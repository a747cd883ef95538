"""The doctor's --units-per-claim advice: a claim's waiting stays under a tenth of its computing,
with no more units than needed, within what the run allows."""

from __future__ import annotations

import pytest

from ganfriends.doctor.advice import (
    MAX_OVERHEAD,
    ROUND_TRIPS_PER_CLAIM,
    describe,
    seconds,
    units_per_claim,
)


@pytest.mark.parametrize(
    ("unit", "round_trip", "download"),
    [(0.3, 0.08, 0.0), (0.05, 0.002, 0.01), (2.0, 0.03, 0.5), (0.01, 0.2, 1.0)],
)
def test_the_advice_is_the_fewest_units_that_keep_waiting_under_a_tenth(
    unit: float, round_trip: float, download: float
) -> None:
    advice = units_per_claim(unit, round_trip, download, cap=10_000)

    waiting = ROUND_TRIPS_PER_CLAIM * round_trip + download
    assert waiting / (advice.units * unit) <= MAX_OVERHEAD
    assert advice.units == 1 or waiting / ((advice.units - 1) * unit) > MAX_OVERHEAD


def test_a_slow_unit_on_a_fast_network_claims_one_at_a_time() -> None:
    assert units_per_claim(5.0, 0.001, 0.01, cap=4).units == 1


def test_the_runs_cap_bounds_the_advice() -> None:
    advice = units_per_claim(0.3, 0.08, 0.0, cap=4)

    assert (advice.units, advice.capped) == (4, True)


def test_a_unit_measured_at_no_time_asks_for_the_cap_not_a_division_by_zero() -> None:
    assert units_per_claim(0.0, 0.01, 0.0, cap=3).units == 3


def test_the_advice_reads_as_the_issue_words_it() -> None:
    advice = units_per_claim(0.3, 0.08, 0.0, cap=4)

    assert describe(advice, 0.3, 0.08) == (
        "a unit takes 0.30 s and a round trip 80 ms (a claim costs 8 round trips and the "
        "weights: 0.64 s): use --units-per-claim 4 (the most this run allows)"
    )


def test_one_unit_per_claim_is_said_to_be_the_default() -> None:
    advice = units_per_claim(5.0, 0.001, 0.0, cap=4)

    line = describe(advice, 5.0, 0.001)

    assert line.endswith(": --units-per-claim 1 (the default) is right here")


@pytest.mark.parametrize(
    ("value", "text"),
    [(0.00004, "0.04 ms"), (0.0004, "0.4 ms"), (0.08, "80 ms"), (0.3, "0.30 s"), (42.4, "42 s")],
)
def test_durations_read_in_the_unit_that_suits_them(value: float, text: str) -> None:
    assert seconds(value) == text
