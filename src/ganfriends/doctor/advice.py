"""How many units a worker should claim at once, from what the doctor measured.

A claim costs a fixed time however many units it holds, and the worker computes nothing
meanwhile: :data:`ROUND_TRIPS_PER_CLAIM` round trips (the claim's transaction and the upload's,
each a pool check, BEGIN, the statement and COMMIT; the upload's statements are pipelined) plus
one download of the published weights (in a class, a claim usually meets a version this worker has
not fetched yet). With ``k`` units per claim that cost is shared by ``k`` units, so::

    fixed = ROUND_TRIPS_PER_CLAIM * round_trip + download
    k     = ceil(fixed / (MAX_OVERHEAD * unit_seconds))

keeps the waiting under :data:`MAX_OVERHEAD` (a tenth) of the computing, clamped to 1 and to the
run's cap: its ``--max-units-per-claim`` and the units one version has (a claim only takes units
of the current version). More than needed would only keep units from idle classmates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

ROUND_TRIPS_PER_CLAIM = 8  # claim: check, BEGIN, claim_units, COMMIT; upload: the same four
MAX_OVERHEAD = 0.1  # the waiting a claim may add, as a share of its computing


@dataclass(frozen=True)
class ClaimAdvice:
    """The advised ``--units-per-claim`` and where it comes from."""

    units: int  # what to use
    wanted: int  # what the formula asks for, before the run's cap
    cap: int  # the most the run lets a claim take
    fixed_seconds: float  # one claim's cost, whatever its size

    @property
    def capped(self) -> bool:
        """The run's cap, not the formula, decided."""
        return self.wanted > self.cap


def units_per_claim(
    unit_seconds: float, round_trip_seconds: float, download_seconds: float, cap: int
) -> ClaimAdvice:
    """The units per claim that keep a claim's waiting under a tenth of its computing (see the
    module docstring), at least 1 and at most ``cap``."""
    fixed = ROUND_TRIPS_PER_CLAIM * round_trip_seconds + download_seconds
    # A unit measured as taking no time at all would ask for infinitely many.
    wanted = max(1, math.ceil(fixed / (MAX_OVERHEAD * max(unit_seconds, 1e-6))))
    cap = max(1, cap)
    return ClaimAdvice(units=min(wanted, cap), wanted=wanted, cap=cap, fixed_seconds=fixed)


def describe(advice: ClaimAdvice, unit_seconds: float, round_trip_seconds: float) -> str:
    """The advice as the doctor prints it, e.g. "a unit takes 0.30 s and a round trip 80 ms
    (a claim costs 8 round trips and the weights: 0.70 s): use --units-per-claim 4 (the most
    this run allows)"."""
    because = (
        f"a unit takes {seconds(unit_seconds)} and a round trip {seconds(round_trip_seconds)} "
        f"(a claim costs {ROUND_TRIPS_PER_CLAIM} round trips and the weights: "
        f"{seconds(advice.fixed_seconds)})"
    )
    if advice.units == 1:
        return f"{because}: --units-per-claim 1 (the default) is right here"
    note = " (the most this run allows)" if advice.capped else ""
    return f"{because}: use --units-per-claim {advice.units}{note}"


def seconds(value: float) -> str:
    """A duration as a person reads it: ``80 ms``, ``0.30 s``, ``12 s``."""
    if value < 0.1:
        digits = 0 if value >= 0.00095 else 1 if value >= 0.0001 else 2
        return f"{value * 1000:.{digits}f} ms"
    return f"{value:.2f} s" if value < 10 else f"{value:.0f} s"
