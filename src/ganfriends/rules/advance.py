"""The step that follows a version's results, whoever drives the loop: the coordinator through
PostgreSQL, ``simulate`` in one process.

    advance = Advance(rule, clip_factor, history)
    screening = advance.screen(server, units, results, students, previous_states)
    (a refused result: the driver gets another copy of its unit and screens again)
    update = advance.combine(server, units, screening)   # NonFiniteUpdate: publish nothing
    ... the driver publishes update.version (one transaction, or its memory) ...
    advance.published(server, update)

Screening (:mod:`.screening`) and the rule decide; this module only fixes their order, the guard
on what is about to be published and what the next version carries (its inputs, the device
states moved). What stays the driver's: where results and device states come from, what happens
to a refused copy, and how a server state spoiled by a non-finite update is put back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from ganfriends.errors import GanError
from ganfriends.rules.base import (
    Rule,
    ServerState,
    Unit,
    UnitResult,
    UpdateRecord,
    network_buffers,
    total_stats,
)
from ganfriends.rules.capabilities import device_moves, inputs_of, publishes_weights
from ganfriends.rules.screening import HISTORY_VERSIONS, Screening, first_non_finite, screen_units
from ganfriends.rules.work import Inputs

# Consecutive non-finite updates of one version before the driver stops: a hostile copy may
# spoil one combine, an honest run that diverged spoils every recomputation.
MAX_NON_FINITE = 3

DeviceState = dict[str, torch.Tensor]


class NonFiniteUpdate(GanError):
    """Combining a version's results produced NaN or inf: nothing may be published."""


@dataclass(frozen=True)
class Update:
    """What one version's accepted results made: version ``version``, ready to publish."""

    version: int
    record: UpdateRecord  # the rule's history row of the combined results
    reference: dict[str, float]  # screening's reference, recorded for the next versions
    units: list[Unit]
    results: list[UnitResult]  # as combined: clipped where screening clipped
    inputs: Inputs | None  # what the new version publishes besides weights
    moves: list[int] | None  # the rule's permutation of the device states (MD-GAN's swaps)
    next_units: list[Unit]  # the new version's units (none once the run is done)

    def device_states(self, before: Mapping[int, DeviceState]) -> dict[int, DeviceState]:
        """The devices' states once this version is published: each unit's new state, then the
        rule's moves (the state of device n becomes device ``moves[n]``'s)."""
        states = dict(before)
        for unit, result in zip(self.units, self.results, strict=True):
            if unit.device is not None and result.device_state is not None:
                states[unit.device] = result.device_state
        if self.moves is not None:
            states = {self.moves[n]: s for n, s in states.items()}
        return states


class Advance:
    """Turns each version's results into the next version with the run's rule, remembering
    screening's references of the last :data:`HISTORY_VERSIONS` versions."""

    def __init__(
        self, rule: Rule, clip_factor: float, history: Sequence[Mapping[str, float]] = ()
    ) -> None:
        self.rule = rule
        self.clip_factor = clip_factor
        self.history: list[dict[str, float]] = [dict(h) for h in history][-HISTORY_VERSIONS:]

    def screen(
        self,
        server: ServerState,
        units: Sequence[Unit],
        results: Sequence[UnitResult],
        students: Sequence[str],
        previous_states: Mapping[int, Mapping[str, torch.Tensor]],
    ) -> Screening:
        """Screening of a version's results (in unit order; ``students`` says whose each is)
        against the version's others, recent versions and the devices' states before the units.
        """
        # Buffer changes are measured from the published buffers, which only rules that publish
        # weights hand to their workers.
        published = (
            network_buffers(server.generator, server.discriminator)
            if publishes_weights(self.rule)
            else None
        )
        return screen_units(
            self.rule, units, results, students, self.history, self.clip_factor,
            published=published, previous_states=previous_states,
        )  # fmt: skip

    def combine(self, server: ServerState, units: Sequence[Unit], screening: Screening) -> Update:
        """Combine the screened results into ``server`` (in place) and say what the next version
        publishes; :class:`NonFiniteUpdate` when the outcome holds NaN or inf (``server`` is then
        spoiled: the driver restores the last good version)."""
        if screening.refused:
            raise ValueError("refused results cannot be combined: screen other copies first")
        rule, results = self.rule, screening.results
        rule.combine(server, units, results)
        bad = first_non_finite(server)
        if bad is not None:
            raise NonFiniteUpdate(f"combining version {server.version}'s results made {bad} "
                                  "non-finite")  # fmt: skip
        new_version = server.version + 1
        return Update(
            version=new_version,
            record=rule.history(server.version, total_stats(results)),
            reference=screening.reference,
            units=list(units),
            results=list(results),
            # Before the driver encodes the weights: publishing inputs may move BatchNorm's
            # running statistics, as a training forward does.
            inputs=inputs_of(rule, server, new_version),
            moves=device_moves(rule, new_version),
            next_units=rule.units_of(new_version) if new_version < rule.plan.total_versions else [],
        )

    def published(self, server: ServerState, update: Update) -> None:
        """Mirror a published ``update`` in ``server`` and in screening's memory."""
        server.version = update.version
        server.images_seen += update.record.images
        self.history = [*self.history, update.reference][-HISTORY_VERSIONS:]


class NonFiniteStrikes:
    """Counts consecutive non-finite updates of a version; the driver recomputes the version
    (nothing was published) until :data:`MAX_NON_FINITE` in a row, then stops."""

    def __init__(self) -> None:
        self.count = 0

    def passed(self) -> None:
        """A version was published: the count starts again."""
        self.count = 0

    def failed(self, exc: NonFiniteUpdate, version: int, *, then: str = "") -> None:
        """One more non-finite update of ``version``; a :class:`GanError` at the limit (``then``
        says what comes next, for the message)."""
        self.count += 1
        if self.count >= MAX_NON_FINITE:
            raise GanError(
                f"{exc}, {self.count} times in a row: stopping with version {version} as the "
                f"last good one{then}"
            ) from exc


def merge_records(records: Sequence[UpdateRecord]) -> UpdateRecord:
    """One optimizer step's record from its versions' (an alternating class step has a D version
    and a G version): the images each newly trained, each loss from the version measuring it."""
    images, d_loss, g_loss, d_real, d_fake = 0, *(4 * [float("nan")])
    for r in records:
        images += r.images
        # A value a phase does not measure is NaN (NaN != NaN): keep the measured one.
        d_loss = r.d_loss if r.d_loss == r.d_loss else d_loss
        g_loss = r.g_loss if r.g_loss == r.g_loss else g_loss
        d_real = r.d_real if r.d_real == r.d_real else d_real
        d_fake = r.d_fake if r.d_fake == r.d_fake else d_fake
    return UpdateRecord(images, d_loss, g_loss, d_real, d_fake)
