"""The plan of a ``sync`` run: which images, noise and steps every unit of every version covers.

The run follows the one data schedule (:mod:`ganfriends.schedule`) with a global batch of K work
units of U images: step s's batch is cut into units, slot j taking rows [jU, (j+1)U) and their
noise rows. A unit's contents therefore depend only on the run's config and seed — not on who
computes it, nor when.

With ``local_steps`` H = 1 (the default) a version is one step (simultaneous) or half of one
(alternating: D's version, then G's). With H > 1 a version is a *round* of H steps: slot j's unit
of round r runs H local steps on its rows of the batches of steps rH .. rH+H-1 (the last round may
have fewer), so the run still trains on exactly the images and noise train-local would.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from ganfriends.data import ImageDataset
from ganfriends.rules.local_steps import OuterStep
from ganfriends.schedule import BatchSchedule, micro_slices
from ganfriends.step import UPDATE_RULES

if TYPE_CHECKING:
    from ganfriends.config import Config

# The phases of one step, by rule: which networks a version's units compute gradients for.
# "local": H local steps of both networks (local_steps > 1), whatever the inner rule.
PHASES: dict[str, tuple[str, ...]] = {"simultaneous": ("GD",), "alternating": ("D", "G")}
LOCAL_PHASE = "local"
SCHEDULE = 2  # the schedule's version in runs.plan: runs created before it cannot be resumed
# The rule of every class run before the key was stored: what a stored plan without it meant.
STORED_DEFAULT_UPDATE_RULE = "simultaneous"


@dataclass(frozen=True)
class UnitRef:
    """Where a unit sits: its round's first step, its slot in the batch, its phase."""

    step: int
    slot: int
    phase: str


@dataclass(frozen=True)
class SyncPlan:
    """The numbers that fix a sync run's schedule (stored as ``runs.plan``)."""

    dataset_size: int
    seed: int
    images_per_unit: int
    units_per_update: int
    micro_batch: int
    epochs: int
    max_updates: int | None = None  # stop the run after this many steps (--max-iterations)
    # No default here: a new run takes the config's (training.update_rule), a stored plan its own.
    update_rule: str = field(kw_only=True)
    # H local steps per unit and the outer step their averaged change is applied with (G's, and
    # D's when it differs). Stored plans without them are H = 1: the exact synchronous step.
    local_steps: int = field(default=1, kw_only=True)
    # The inner Adam between rounds: "reset" (fresh per unit) or "keep" (slot j's carried
    # through the database from its unit of the round before).
    local_state: str = field(default="reset", kw_only=True)
    outer_g: OuterStep = field(default=OuterStep(), kw_only=True)
    outer_d: OuterStep = field(default=OuterStep(), kw_only=True)

    def __post_init__(self) -> None:
        if self.images_per_unit > self.dataset_size:
            raise ValueError(
                f"a work unit of {self.images_per_unit} images is larger than the dataset "
                f"({self.dataset_size}): lower --images-per-work-unit"
            )
        if self.batch_size > self.dataset_size:
            raise ValueError(
                f"an update of {self.units_per_update} units of {self.images_per_unit} images "
                f"is larger than the dataset ({self.dataset_size}): lower "
                "--workunits-per-update or --images-per-work-unit"
            )
        if self.micro_batch > self.images_per_unit:
            raise ValueError("the micro-batch is larger than a work unit")
        if self.update_rule not in UPDATE_RULES:
            raise ValueError(
                f"unknown update rule {self.update_rule!r}: choose one of {', '.join(UPDATE_RULES)}"
            )
        if self.local_steps < 1:
            raise ValueError("--local-steps must be at least 1")
        if self.local_state not in ("keep", "reset"):
            raise ValueError(f"unknown local state policy {self.local_state!r}")

    @classmethod
    def from_config(cls, config: Config, dataset: ImageDataset) -> SyncPlan:
        """A new run's plan from the coordinator's (or simulator's) settings."""
        training, coordinator = config.training, config.coordinator
        outer_g = OuterStep(
            coordinator.outer_optimizer, coordinator.outer_lr, coordinator.outer_momentum
        )
        outer_d = OuterStep(
            coordinator.outer_optimizer,
            coordinator.outer_lr if coordinator.outer_lr_d is None else coordinator.outer_lr_d,
            (
                coordinator.outer_momentum
                if coordinator.outer_momentum_d is None
                else coordinator.outer_momentum_d
            ),
        )
        return cls(
            dataset_size=len(dataset),
            seed=training.seed,
            images_per_unit=coordinator.images_per_work_unit,
            units_per_update=coordinator.workunits_per_update,
            micro_batch=training.unit_micro_batch,
            epochs=training.epochs,
            max_updates=coordinator.max_iterations,
            update_rule=training.update_rule,
            local_steps=coordinator.local_steps or 1,
            local_state=coordinator.local_state or "reset",
            outer_g=outer_g,
            outer_d=outer_d,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SyncPlan:
        """Inverse of :meth:`to_dict`."""
        if data.get("schedule") != SCHEDULE:
            raise ValueError(
                "this run was created by an older ganfriends whose data schedule differs: "
                "start a new run (coordinator --new-run)"
            )
        max_updates = data.get("max_updates")
        return cls(
            dataset_size=int(data["dataset_size"]),
            seed=int(data["seed"]),
            images_per_unit=int(data["images_per_unit"]),
            units_per_update=int(data["units_per_update"]),
            micro_batch=int(data["micro_batch"]),
            epochs=int(data["epochs"]),
            max_updates=None if max_updates is None else int(max_updates),
            update_rule=str(data.get("update_rule", STORED_DEFAULT_UPDATE_RULE)),
            local_steps=int(data.get("local_steps", 1)),
            local_state=str(data.get("local_state", "reset")),
            outer_g=OuterStep.from_dict(data.get("outer_g", {})),
            outer_d=OuterStep.from_dict(data.get("outer_d", {})),
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON stored in ``runs.plan``."""
        return asdict(self) | {"schedule": SCHEDULE}

    def describe(self) -> str:
        """One line for the coordinator's log."""
        line = (
            f"{self.units_per_update} units of {self.images_per_unit} images per step, "
            f"{self.schedule.steps_per_epoch} steps per epoch, {self.total_updates} steps, "
            f"rule {self.update_rule}"
        )
        if not self.local:
            return line
        outer = f"outer {self.outer_g.describe()}"
        if self.outer_d != self.outer_g:
            outer = f"outer G {self.outer_g.describe()}, D {self.outer_d.describe()}"
        inner = "inner Adam kept per slot" if self.keeps_state else "a fresh inner Adam each"
        return f"{line}; {self.local_steps} local steps per unit ({inner}), {outer}"

    @property
    def local(self) -> bool:
        """Whether a unit runs local steps (H > 1) rather than one exact step's gradient."""
        return self.local_steps > 1

    @property
    def keeps_state(self) -> bool:
        """Whether each slot's inner Adam carries over between its rounds."""
        return self.local and self.local_state == "keep"

    @property
    def batch_size(self) -> int:
        """Images of one optimizer step: K units of U."""
        return self.units_per_update * self.images_per_unit

    @property
    def schedule(self) -> BatchSchedule:
        """The run's data schedule, the one train-local follows with this batch size."""
        return BatchSchedule(self.dataset_size, self.batch_size, self.seed)

    @property
    def phases(self) -> tuple[str, ...]:
        """The versions of one round, by what their units compute."""
        return (LOCAL_PHASE,) if self.local else PHASES[self.update_rule]

    @property
    def versions_per_step(self) -> int:
        """Two for the alternating rule (D's step, then G's), one for simultaneous and for a
        round of local steps."""
        return len(self.phases)

    @property
    def units_per_epoch(self) -> int:
        """Units of one pass (the permutation's tail of less than a batch is left out)."""
        return math.ceil(self.schedule.steps_per_epoch / self.local_steps) * self.units_per_update

    @property
    def total_updates(self) -> int:
        """Optimizer steps in the whole run (local steps count one each)."""
        steps = self.schedule.steps_per_epoch * self.epochs
        return steps if self.max_updates is None else min(steps, self.max_updates)

    @property
    def rounds(self) -> int:
        """Rounds of H steps (the last may be shorter); H = 1: the steps."""
        return math.ceil(self.total_updates / self.local_steps)

    @property
    def total_units(self) -> int:
        """Units in the whole run."""
        return self.rounds * self.units_per_update * self.versions_per_step

    @property
    def total_versions(self) -> int:
        """Versions published after version 0."""
        return self.rounds * self.versions_per_step

    @property
    def images_per_version(self) -> int:
        """New images per version (a step's batch is trained once over its versions)."""
        return self.batch_size * self.local_steps // self.versions_per_step

    def phase(self, version: int) -> str:
        """What the units computed on weights ``version`` compute."""
        return self.phases[version % self.versions_per_step]

    def units_of_update(self, version: int) -> list[int]:
        """Unit numbers computed on weights ``version`` (empty once the run is done)."""
        round_index, phase = divmod(version, self.versions_per_step)
        if round_index >= self.rounds:
            return []
        first = round_index * self.units_per_update
        return [
            (first + slot) * self.versions_per_step + phase for slot in range(self.units_per_update)
        ]

    def unit_ref(self, unit_index: int) -> UnitRef:
        """The first step, slot and phase of unit ``unit_index``."""
        number, phase = divmod(unit_index, self.versions_per_step)
        round_index, slot = divmod(number, self.units_per_update)
        return UnitRef(round_index * self.local_steps, slot, self.phases[phase])

    def unit_steps(self, unit_index: int) -> range:
        """The steps a unit trains on: one, or its round's H (fewer in a short last round)."""
        first = self.unit_ref(unit_index).step
        return range(first, min(first + self.local_steps, self.total_updates))

    def epochs_done(self, version: int) -> float:
        """Fractional epochs completed once ``version`` is published (whole steps only)."""
        steps = min(version // self.versions_per_step * self.local_steps, self.total_updates)
        return steps / self.schedule.steps_per_epoch

    def unit_rows(self, unit_index: int) -> slice:
        """A unit's rows of each of its steps' batches."""
        slot = self.unit_ref(unit_index).slot
        return slice(slot * self.images_per_unit, (slot + 1) * self.images_per_unit)

    def unit_images(self, unit_index: int, step: int | None = None) -> list[int]:
        """Dataset indices of a unit's rows of step ``step``'s batch (default: its first)."""
        step = self.unit_ref(unit_index).step if step is None else step
        return self.schedule.images(step, self.unit_rows(unit_index))

    def unit_noise(self, unit_index: int, latent_dim: int, step: int | None = None) -> torch.Tensor:
        """z (U, latent_dim, 1, 1) of a unit's rows of step ``step`` (default: its first)."""
        step = self.unit_ref(unit_index).step if step is None else step
        return self.schedule.noise(step, latent_dim, self.unit_rows(unit_index))

    def micro_batches(self, images: list[int]) -> list[list[int]]:
        """A unit's images split into the run's micro-batches (the last may be smaller)."""
        return [images[rows] for rows in micro_slices(0, len(images), self.micro_batch)]


__all__ = ["PHASES", "SCHEDULE", "SyncPlan", "UnitRef"]
