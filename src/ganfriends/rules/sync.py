"""The ``sync`` mode: synchronous data-parallel training, the reference DCGAN step distributed.

The run follows the one data schedule (:mod:`ganfriends.schedule`) with a global batch of K work
units of U images: step s's batch is cut into units, slot j taking rows [jU, (j+1)U) and their
noise rows. A unit's contents therefore depend only on the run's config and seed — not on who
computes it, nor when — and ``train-local --batch-size K*U --micro-batch M`` with the same seed
trains on exactly the same images and noise.

Two update rules, as in :mod:`ganfriends.step`:

``simultaneous``
    One version per step: each unit computes both mean gradients on the published G and D; the
    coordinator averages the K units weighted by images, in unit order, and steps both Adams.
``alternating`` (the reference)
    Two versions per step. D units (version 2s) compute D's gradient on real images and fakes
    of G_s; the coordinator steps D and publishes D_{s+1} with G_s unchanged. G units (version
    2s+1) compute G's gradient through D_{s+1} with the same noise; the coordinator steps G.

BatchNorm running statistics are chained over the units in order
(:func:`ganfriends.aggregate.chain_buffers`), as one process running the units' micro-batches in
turn would hold them; in the alternating rule D units report D's statistics and G units both
networks' (G's forward counts once per step, as in the reference).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ganfriends import rng
from ganfriends.aggregate import Contribution, chain_buffers, weighted_mean
from ganfriends.blobs import TensorSpec, buffer_spec, parameter_spec
from ganfriends.data import ImageDataset
from ganfriends.errors import DatasetError
from ganfriends.models import ModelConfig
from ganfriends.rules.base import (
    RuleBase,
    ServerState,
    Unit,
    UnitResult,
    UpdateRecord,
    apply_pseudo_gradients,
    network_buffers,
)
from ganfriends.rules.registry import Mode
from ganfriends.rules.work import FRESH, UnitStart, Workspace
from ganfriends.schedule import BatchSchedule, micro_slices
from ganfriends.step import (
    UPDATE_RULES,
    MicroBatch,
    StepStats,
    discriminator_gradients,
    generator_gradients,
    train_step,
)

if TYPE_CHECKING:
    from ganfriends.config import Config

# The phases of one step, by rule: which networks a version's units compute gradients for.
PHASES: dict[str, tuple[str, ...]] = {"simultaneous": ("GD",), "alternating": ("D", "G")}
SCHEDULE = 2  # the schedule's version in runs.plan: runs created before it cannot be resumed
# The rule of every class run before the key was stored: what a stored plan without it meant.
STORED_DEFAULT_UPDATE_RULE = "simultaneous"
TRANSFER_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


@dataclass(frozen=True)
class UnitRef:
    """Where a unit sits: its step, its slot in the step's batch, its phase (``PHASES``)."""

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

    @classmethod
    def from_config(cls, config: Config, dataset: ImageDataset) -> SyncPlan:
        """A new run's plan from the coordinator's (or simulator's) settings."""
        training, coordinator = config.training, config.coordinator
        return cls(
            dataset_size=len(dataset),
            seed=training.seed,
            images_per_unit=coordinator.images_per_work_unit,
            units_per_update=coordinator.workunits_per_update,
            micro_batch=training.unit_micro_batch,
            epochs=training.epochs,
            max_updates=coordinator.max_iterations,
            update_rule=training.update_rule,
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
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON stored in ``runs.plan``."""
        return asdict(self) | {"schedule": SCHEDULE}

    def describe(self) -> str:
        """One line for the coordinator's log."""
        return (
            f"{self.units_per_update} units of {self.images_per_unit} images per step, "
            f"{self.schedule.steps_per_epoch} steps per epoch, {self.total_updates} steps, "
            f"rule {self.update_rule}"
        )

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
        """The versions of one step, by what their units compute."""
        return PHASES[self.update_rule]

    @property
    def versions_per_step(self) -> int:
        """Two for the alternating rule (D's step, then G's), one for simultaneous."""
        return len(self.phases)

    @property
    def units_per_epoch(self) -> int:
        """Units of one pass (the permutation's tail of less than a batch is left out)."""
        return self.schedule.steps_per_epoch * self.units_per_update

    @property
    def total_updates(self) -> int:
        """Optimizer steps in the whole run."""
        steps = self.schedule.steps_per_epoch * self.epochs
        return steps if self.max_updates is None else min(steps, self.max_updates)

    @property
    def total_units(self) -> int:
        """Units in the whole run."""
        return self.total_updates * self.units_per_update * self.versions_per_step

    @property
    def total_versions(self) -> int:
        """Versions published after version 0."""
        return self.total_updates * self.versions_per_step

    @property
    def images_per_version(self) -> int:
        """New images per version (a step's batch is trained once over its versions)."""
        return self.batch_size // self.versions_per_step

    def phase(self, version: int) -> str:
        """What the units computed on weights ``version`` compute."""
        return self.phases[version % self.versions_per_step]

    def units_of_update(self, version: int) -> list[int]:
        """Unit numbers computed on weights ``version`` (empty once the run is done)."""
        step, phase = divmod(version, self.versions_per_step)
        if step >= self.total_updates:
            return []
        first = step * self.units_per_update
        return [
            (first + slot) * self.versions_per_step + phase for slot in range(self.units_per_update)
        ]

    def unit_ref(self, unit_index: int) -> UnitRef:
        """The step, slot and phase of unit ``unit_index``."""
        number, phase = divmod(unit_index, self.versions_per_step)
        step, slot = divmod(number, self.units_per_update)
        return UnitRef(step, slot, self.phases[phase])

    def epochs_done(self, version: int) -> float:
        """Fractional epochs completed once ``version`` is published (whole steps only)."""
        steps = min(version // self.versions_per_step, self.total_updates)
        return steps / self.schedule.steps_per_epoch

    def unit_rows(self, unit_index: int) -> slice:
        """A unit's rows of its step's batch."""
        slot = self.unit_ref(unit_index).slot
        return slice(slot * self.images_per_unit, (slot + 1) * self.images_per_unit)

    def unit_images(self, unit_index: int) -> list[int]:
        """Dataset indices of a unit: its rows of its step's batch."""
        return self.schedule.images(self.unit_ref(unit_index).step, self.unit_rows(unit_index))

    def unit_noise(self, unit_index: int, latent_dim: int) -> torch.Tensor:
        """z of a unit's images, (U, latent_dim, 1, 1): its rows of its step's noise."""
        step = self.unit_ref(unit_index).step
        return self.schedule.noise(step, latent_dim, self.unit_rows(unit_index))

    def micro_batches(self, images: list[int]) -> list[list[int]]:
        """A unit's images split into the run's micro-batches (the last may be smaller)."""
        return [images[rows] for rows in micro_slices(0, len(images), self.micro_batch)]


def collect_gradients(
    generator: nn.Module, discriminator: nn.Module, stats: StepStats, phase: str = "GD"
) -> UnitResult:
    """Gather the mean gradients the shared step left in ``.grad`` for the networks of ``phase``
    and the buffers a result of that phase reports (see :func:`phase_spec`), on the CPU."""
    gradients: dict[str, torch.Tensor] = {}
    for prefix, module in (("g.", generator), ("d.", discriminator)):
        if prefix[0].upper() not in phase:
            continue
        for name, p in module.named_parameters():
            grad = p.grad if p.grad is not None else torch.zeros_like(p)
            gradients[prefix + name] = grad.detach().to("cpu", torch.float32, copy=True)
    buffers = network_buffers(generator, discriminator)
    if phase == "D":  # G's statistics move again, once, in the G phase
        buffers = {k: v for k, v in buffers.items() if k.startswith("dbuf.")}
    return UnitResult(gradients, buffers, stats)


def phase_spec(
    generator: nn.Module,
    discriminator: nn.Module,
    phase: str,
    transfer_dtype: torch.dtype = torch.float32,
) -> TensorSpec:
    """Exactly the tensors an honest result of ``phase`` holds: the gradients of its networks
    (in ``transfer_dtype``), D's buffers, and G's unless the phase is D alone (G's statistics
    move in the G phase)."""
    spec = buffer_spec(discriminator, "dbuf.")
    if "G" in phase:
        spec = spec.merged(parameter_spec(generator, "g.", transfer_dtype))
    if "D" in phase:
        spec = spec.merged(parameter_spec(discriminator, "d.", transfer_dtype))
    if phase != "D":
        spec = spec.merged(buffer_spec(generator, "gbuf."))
    return spec


def rounded_to(tensors: dict[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """float32 tensors holding exactly the values ``dtype`` can carry (round to nearest even)."""
    if dtype == torch.float32:
        return tensors
    return {name: t.to(dtype).to(torch.float32) for name, t in tensors.items()}


def batchnorm_momenta(module: nn.Module, prefix: str) -> dict[str, float]:
    """Each BatchNorm layer's buffer prefix (``prefix`` + layer name) and momentum."""
    momenta: dict[str, float] = {}
    for name, layer in module.named_modules():
        if isinstance(layer, nn.modules.batchnorm._BatchNorm) and layer.track_running_stats:
            if layer.momentum is None:
                raise ValueError("BatchNorm with momentum=None cannot be chained")
            momenta[prefix + name] = float(layer.momentum)
    return momenta


class SyncRule(RuleBase[SyncPlan]):
    """K units of mean gradients -> their image-weighted mean -> one Adam step for G and D
    (simultaneous), or for D and then for G (alternating)."""

    def __init__(
        self,
        plan: SyncPlan,
        config: Config,
        model_config: ModelConfig,
        dataset: ImageDataset | None = None,
    ) -> None:
        super().__init__(plan, config, model_config)
        self.latent_dim = model_config.latent_dim
        self.transfer_dtype = TRANSFER_DTYPES[config.coordinator.transfer_dtype]

    def units_of(self, version: int) -> list[Unit]:
        """The K fixed units computed on weights ``version``."""
        return [Unit(i) for i in self.plan.units_of_update(version)]

    def result_spec(
        self, generator: nn.Module, discriminator: nn.Module, version: int | None = None
    ) -> TensorSpec:
        """The tensors of a result of ``version``'s phase (None: the largest, both networks)."""
        phase = "GD" if version is None else self.plan.phase(version)
        return phase_spec(generator, discriminator, phase, self.transfer_dtype)

    def history(self, version: int, stats: StepStats) -> UpdateRecord:
        """A D phase measures D's loss and scores; a G phase G's loss, on images already
        counted by its D phase."""
        record = UpdateRecord.of(stats)
        phase = self.plan.phase(version)
        nan = float("nan")
        if phase == "D":
            return UpdateRecord(record.images, record.d_loss, nan, record.d_real, record.d_fake)
        if phase == "G":
            return UpdateRecord(0, nan, record.g_loss, nan, nan)
        return record

    def max_images(self, unit: Unit) -> int:
        """A unit's slice of the permutation."""
        return self.plan.images_per_unit

    def compute(self, work: Workspace, unit: Unit, start: UnitStart = FRESH) -> UnitResult:
        """Mean gradients of the unit's phase over its images, on the weights the models hold.

        No optimizer steps here. BatchNorm runs in train mode over each micro-batch, so the
        models' buffers change: the caller restores the published weights before the next unit.
        """
        plan, generator, discriminator = self.plan, work.generator, work.discriminator
        ref = plan.unit_ref(unit.index)
        generator.train()
        discriminator.train()
        images = plan.unit_images(unit.index)
        noise = plan.unit_noise(unit.index, self.latent_dim)
        skipped = 0

        def batches() -> Iterator[MicroBatch]:
            nonlocal skipped
            for rows in micro_slices(0, len(images), plan.micro_batch):
                real, missing = work.dataset.get_batch(images[rows])
                skipped += missing
                if real.shape[0] == 0:
                    continue
                z = noise[rows][: real.shape[0]]
                yield MicroBatch(real.to(work.device), z.to(work.device))

        # Dropout draws (FeGAN's LSGAN D) from the unit's key; the DCGAN has none.
        with rng.seeded_global_rng(work.device, plan.seed, rng.DROPOUT, unit.index):
            if ref.phase == "D":
                stats = discriminator_gradients(generator, discriminator, self.loss, batches())
            elif ref.phase == "G":
                stats = generator_gradients(generator, discriminator, self.loss, batches())
            else:
                stats = train_step(generator, discriminator, self.loss, batches(), "simultaneous")
        stats.skipped = skipped
        if stats.images == 0:
            raise DatasetError(
                f"unit {unit.index}: none of its {len(images)} images could "
                "be read on this machine (see the warnings above): check the dataset's files"
            )
        result = collect_gradients(generator, discriminator, stats, ref.phase)
        # Rounded here, where every mode sees it (the transport then ships these exact values in
        # the narrower dtype): a class run and its simulation combine the same numbers.
        result.parameters = rounded_to(result.parameters, self.transfer_dtype)
        return result

    def combine(
        self, state: ServerState, units: Sequence[Unit], results: Sequence[UnitResult]
    ) -> None:
        """Image-weighted mean of the gradients, one Adam step for each network they cover;
        BatchNorm buffers chained over the units in unit order."""
        gradients = weighted_mean([Contribution(r.images, r.parameters) for r in results])
        published = network_buffers(state.generator, state.discriminator)
        momenta = batchnorm_momenta(state.generator, "gbuf.") | batchnorm_momenta(
            state.discriminator, "dbuf."
        )
        reported = set(results[0].buffers)
        start = {k: v for k, v in published.items() if k in reported}
        layers = {k: m for k, m in momenta.items() if k + ".running_mean" in reported}
        buffers = chain_buffers(start, [r.buffers for r in results], layers)
        apply_pseudo_gradients(state, gradients, buffers)


MODE = Mode(
    name="sync",
    description="one optimizer step from K units of gradients per version",
    plan=SyncPlan,
    rule=SyncRule,
    settings=(
        "coordinator.images_per_work_unit",
        "coordinator.workunits_per_update",
        "coordinator.transfer_dtype",
        "coordinator.max_iterations",
    ),
)
