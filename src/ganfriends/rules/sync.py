"""The ``sync`` mode: synchronous data-parallel training, the reference DCGAN step distributed.

The plan (:mod:`ganfriends.rules.sync_plan`) cuts each step's batch of the one data schedule into
K units of U images, so ``train-local --batch-size K*U --micro-batch M`` with the same seed trains
on exactly the same images and noise.

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

``--local-steps H`` (H > 1) trades that exactness for H times fewer transfers: a unit runs H
local steps on its rows of H consecutive batches with its own inner Adam, and the coordinator
applies the image-weighted mean change through an outer optimizer
(:mod:`ganfriends.rules.local_steps`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn

from ganfriends import compression, rng
from ganfriends.aggregate import Contribution, chain_buffers, weighted_mean
from ganfriends.blobs import TensorSpec, buffer_spec, parameter_spec
from ganfriends.data import ImageDataset
from ganfriends.errors import DatasetError
from ganfriends.federated.local_state import (
    local_state_spec,
)
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
from ganfriends.rules.local_steps import SETTINGS as LOCAL_STEP_SETTINGS
from ganfriends.rules.local_steps import (
    LocalRun,
    apply_mean_change,
    change_problem,
    outer_optimizers,
)
from ganfriends.rules.registry import Mode
from ganfriends.rules.sync_plan import LOCAL_PHASE, SyncPlan, UnitRef
from ganfriends.rules.work import FRESH, UnitStart, Workspace
from ganfriends.schedule import micro_slices
from ganfriends.step import (
    MicroBatch,
    StepStats,
    discriminator_gradients,
    generator_gradients,
    train_step,
)

if TYPE_CHECKING:
    from ganfriends.config import Config


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
    transfer: compression.Transfer = compression.FLOAT32,
) -> TensorSpec:
    """Exactly the tensors an honest result of ``phase`` holds: the gradients of its networks
    (as ``transfer`` sends them), D's buffers, and G's unless the phase is D alone (G's
    statistics move in the G phase). A round of local steps holds both networks' changes and
    buffers."""
    if phase == LOCAL_PHASE:
        phase = "GD"
    spec = buffer_spec(discriminator, "dbuf.")
    if "G" in phase:
        spec = spec.merged(compression.wire_spec(parameter_spec(generator, "g."), transfer))
    if "D" in phase:
        spec = spec.merged(compression.wire_spec(parameter_spec(discriminator, "d."), transfer))
    if phase != "D":
        spec = spec.merged(buffer_spec(generator, "gbuf."))
    return spec


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
    (simultaneous), or for D and then for G (alternating). With local steps: K units of H
    inner steps -> their image-weighted mean change -> one outer step."""

    def __init__(
        self,
        plan: SyncPlan,
        config: Config,
        model_config: ModelConfig,
        dataset: ImageDataset | None = None,
    ) -> None:
        super().__init__(plan, config, model_config)
        self.latent_dim = model_config.latent_dim
        self.transfer = compression.transfer(config.coordinator.transfer_dtype)

    def units_of(self, version: int) -> list[Unit]:
        """The K fixed units computed on weights ``version`` (with a kept inner state, each
        unit is its slot's device: the slot's state goes with it)."""
        plan = self.plan
        if plan.keeps_state:
            return [Unit(i, plan.unit_ref(i).slot) for i in plan.units_of_update(version)]
        return [Unit(i) for i in plan.units_of_update(version)]

    def device_state_spec(
        self, generator: nn.Module, discriminator: nn.Module
    ) -> TensorSpec | None:
        """A slot's inner Adam moments when the plan keeps them (else None: no state moves)."""
        return local_state_spec(generator, discriminator) if self.plan.keeps_state else None

    def result_spec(
        self, generator: nn.Module, discriminator: nn.Module, version: int | None = None
    ) -> TensorSpec:
        """The tensors of a result of ``version``'s phase (None: the largest, both networks)."""
        phase = "GD" if version is None else self.plan.phase(version)
        return phase_spec(generator, discriminator, phase, self.transfer)

    def history(self, version: int, stats: StepStats) -> UpdateRecord:
        """A D phase measures D's loss and scores; a G phase G's loss, on images already
        counted by its D phase; a round of local steps both, over its local steps."""
        record = UpdateRecord.of(stats)
        phase = self.plan.phase(version)
        nan = float("nan")
        if phase == "D":
            return UpdateRecord(record.images, record.d_loss, nan, record.d_real, record.d_fake)
        if phase == "G":
            return UpdateRecord(0, nan, record.g_loss, nan, nan)
        return record

    def max_images(self, unit: Unit) -> int:
        """A unit's slice of the permutation (of each of its local steps' batches)."""
        return self.plan.images_per_unit * len(self.plan.unit_steps(unit.index))

    def server_optimizers(
        self, generator: nn.Module, discriminator: nn.Module
    ) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
        """DCGAN's Adam; with local steps the outer optimizers of the plan."""
        if self.plan.local:
            return outer_optimizers(generator, discriminator, self.plan.outer_g, self.plan.outer_d)
        return super().server_optimizers(generator, discriminator)

    def compute(self, work: Workspace, unit: Unit, start: UnitStart = FRESH) -> UnitResult:
        """Mean gradients of the unit's phase over its images, on the weights the models hold;
        with local steps, the change H inner steps make to them.

        No optimizer steps here. BatchNorm runs in train mode over each micro-batch, so the
        models' buffers change: the caller restores the published weights before the next unit.
        """
        ref = self.plan.unit_ref(unit.index)
        work.generator.train()
        work.discriminator.train()
        # Dropout draws (FeGAN's LSGAN D) from the unit's key; the DCGAN has none.
        with rng.seeded_global_rng(work.device, self.plan.seed, rng.DROPOUT, unit.index):
            if ref.phase == LOCAL_PHASE:
                result = self._local_steps(work, unit, start.device_state)
            else:
                result = self._gradients(work, unit, ref)
        if result.stats.images == 0:
            raise DatasetError(
                f"unit {unit.index}: none of its {self.max_images(unit)} images could be read "
                "on this machine (see the warnings above): check the dataset's files"
            )
        # Compressed here, where every mode sees it, with draws keyed by the unit: the transport
        # ships the wire form, and a class run and its simulation combine the same numbers.
        sent = compression.compress(
            result.parameters, self.transfer, self.plan.seed, rng.TRANSFER, unit.index
        )
        result.parameters, result.wire = sent.values, sent.wire
        return result

    def _batches(
        self, work: Workspace, unit: Unit, step: int, stats: StepStats
    ) -> Iterator[MicroBatch]:
        """The unit's rows of step ``step``'s batch, in micro-batches on the work's device, read
        as they are consumed (one in memory at a time for the gradient phases); unreadable
        images are counted in ``stats.skipped``."""
        images = self.plan.unit_images(unit.index, step)
        noise = self.plan.unit_noise(unit.index, self.latent_dim, step)
        for rows in micro_slices(0, len(images), self.plan.micro_batch):
            real, missing = work.dataset.get_batch(images[rows])
            stats.skipped += missing
            if real.shape[0] > 0:
                z = noise[rows][: real.shape[0]]
                yield MicroBatch(real.to(work.device), z.to(work.device))

    def _gradients(self, work: Workspace, unit: Unit, ref: UnitRef) -> UnitResult:
        generator, discriminator = work.generator, work.discriminator
        counted = StepStats()
        batches = self._batches(work, unit, ref.step, counted)
        if ref.phase == "D":
            stats = discriminator_gradients(generator, discriminator, self.loss, batches)
        elif ref.phase == "G":
            stats = generator_gradients(generator, discriminator, self.loss, batches)
        else:
            stats = train_step(generator, discriminator, self.loss, batches, "simultaneous")
        stats.skipped = counted.skipped
        return collect_gradients(generator, discriminator, stats, ref.phase)

    def _local_steps(
        self, work: Workspace, unit: Unit, state: dict[str, torch.Tensor] | None
    ) -> UnitResult:
        """H steps of the run's rule with a fresh inner Adam, or the slot's kept one; the
        weights' change (and the inner state, when kept)."""
        local = LocalRun(
            work.generator, work.discriminator, self.learning_rate, self.betas,
            keep=self.plan.keeps_state, state=state,
        )  # fmt: skip
        stats, counted = StepStats(), StepStats()
        for step in self.plan.unit_steps(unit.index):
            batches = self._batches(work, unit, step, counted)
            stats += local.step(self.loss, batches, self.plan.update_rule)
        stats.skipped = counted.skipped
        return local.result(stats)

    def check_result(
        self, unit: Unit, result: UnitResult, previous_state: dict[str, torch.Tensor] | None
    ) -> str | None:
        """With local steps, no coordinate may move beyond H inner Adam steps' bound (a
        gradient of one exact step has no a-priori bound: None)."""
        if not self.plan.local:
            return None
        steps = len(self.plan.unit_steps(unit.index))
        return change_problem(result, previous_state, steps, self.learning_rate, self.betas)

    def combine(
        self, state: ServerState, units: Sequence[Unit], results: Sequence[UnitResult]
    ) -> None:
        """Image-weighted mean of the gradients, one Adam step for each network they cover;
        BatchNorm buffers chained over the units in unit order. With local steps: the
        image-weighted mean change through the outer optimizers, buffers averaged."""
        if self.plan.local:
            total = sum(r.images for r in results)
            apply_mean_change(state, [r.images / total for r in results], results)
            return
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
        "coordinator.download_dtype",
        "coordinator.max_iterations",
        *LOCAL_STEP_SETTINGS,
    ),
)
