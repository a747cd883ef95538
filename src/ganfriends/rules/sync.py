"""The ``sync`` mode: synchronous data-parallel SGD, exactly one optimizer step per version.

An epoch is a pass over a permutation of the dataset drawn from (seed, epoch); a work unit is a
slice of it (default 320 images); the global unit number ``g`` lives in epoch
``g // units_per_epoch``. Update ``v`` (from weights version v to v+1) uses the fixed units
``[v*K, (v+1)*K)`` (K = units per update; the last update may have fewer). A unit's contents and
its noise therefore depend only on the run's config and seed — not on who computes it, nor when.

A worker computes both mean gradients of a unit on one published version (the ``simultaneous``
rule of the shared step, no optimizer); the coordinator averages the K units weighted by images,
in unit order, and takes one Adam step: the same step as one batch of all their images.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from ganfriends import rng
from ganfriends.aggregate import Contribution, merge_buffers, weighted_mean
from ganfriends.blobs import TensorSpec
from ganfriends.data import ImageDataset
from ganfriends.errors import DatasetError
from ganfriends.losses import GanLoss
from ganfriends.rules.base import (
    Inputs,
    PublishesWeights,
    ServerState,
    Unit,
    UnitResult,
    apply_pseudo_gradients,
    network_buffers,
)
from ganfriends.step import MicroBatch, make_optimizers, train_step


@dataclass(frozen=True)
class SyncPlan:
    """The numbers that fix a sync run's schedule (stored as ``runs.plan``)."""

    dataset_size: int
    seed: int
    images_per_unit: int
    units_per_update: int
    micro_batch: int
    epochs: int
    max_updates: int | None = None  # stop the run after this many updates (--max-iterations)

    def __post_init__(self) -> None:
        if self.images_per_unit > self.dataset_size:
            raise ValueError(
                f"a work unit of {self.images_per_unit} images is larger than the dataset "
                f"({self.dataset_size}): lower --images-per-work-unit"
            )
        if self.micro_batch > self.images_per_unit:
            raise ValueError("the micro-batch is larger than a work unit")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SyncPlan:
        """Inverse of :meth:`to_dict`."""
        max_updates = data.get("max_updates")
        return cls(
            dataset_size=int(data["dataset_size"]),
            seed=int(data["seed"]),
            images_per_unit=int(data["images_per_unit"]),
            units_per_update=int(data["units_per_update"]),
            micro_batch=int(data["micro_batch"]),
            epochs=int(data["epochs"]),
            max_updates=None if max_updates is None else int(max_updates),
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON stored in ``runs.plan``."""
        return asdict(self)

    def describe(self) -> str:
        """One line for the coordinator's log."""
        return (
            f"{self.units_per_epoch} units of {self.images_per_unit} images per epoch, "
            f"{self.units_per_update} units per update, {self.total_updates} updates"
        )

    @property
    def units_per_epoch(self) -> int:
        """Whole units in one pass (the permutation's tail of < one unit is left out that epoch)."""
        return self.dataset_size // self.images_per_unit

    @property
    def total_units(self) -> int:
        """Units in the whole run."""
        return self.units_per_epoch * self.epochs

    @property
    def total_updates(self) -> int:
        """Optimizer steps in the whole run."""
        updates = math.ceil(self.total_units / self.units_per_update)
        return updates if self.max_updates is None else min(updates, self.max_updates)

    @property
    def total_versions(self) -> int:
        """Versions published after version 0: one per optimizer step."""
        return self.total_updates

    @property
    def images_per_version(self) -> int:
        """Images in one full update."""
        return self.units_per_update * self.images_per_unit

    def units_of_update(self, version: int) -> range:
        """Global unit numbers computed on weights ``version`` (empty once the run is done)."""
        if version >= self.total_updates:
            return range(0)
        first = version * self.units_per_update
        return range(first, min(first + self.units_per_update, self.total_units))

    def epoch_of(self, unit_index: int) -> int:
        """The epoch a unit belongs to."""
        return unit_index // self.units_per_epoch

    def epochs_done(self, version: int) -> float:
        """Fractional epochs completed once ``version`` is published."""
        return min(version * self.units_per_update, self.total_units) / self.units_per_epoch

    def unit_images(self, unit_index: int) -> list[int]:
        """Dataset indices of a unit: its slice of its epoch's permutation."""
        epoch, slot = divmod(unit_index, self.units_per_epoch)
        order = rng.permutation(self.dataset_size, self.seed, rng.DATA_ORDER, epoch)
        start = slot * self.images_per_unit
        return order[start : start + self.images_per_unit].tolist()

    def micro_batches(self, images: list[int]) -> list[list[int]]:
        """A unit's images split into the run's micro-batches (the last may be smaller)."""
        return [images[i : i + self.micro_batch] for i in range(0, len(images), self.micro_batch)]

    def noise(self, unit_index: int, micro_index: int, n: int, latent_dim: int) -> torch.Tensor:
        """z for one micro-batch of one unit: the same on every worker and every retry."""
        return rng.latent_noise(n, latent_dim, self.seed, rng.NOISE, unit_index, micro_index)


def collect_gradients(generator: nn.Module, discriminator: nn.Module, stats: Any) -> UnitResult:
    """Gather the mean gradients the shared step left in ``.grad`` and the buffers (on CPU)."""
    gradients: dict[str, torch.Tensor] = {}
    for prefix, module in (("g.", generator), ("d.", discriminator)):
        for name, p in module.named_parameters():
            grad = p.grad if p.grad is not None else torch.zeros_like(p)
            gradients[prefix + name] = grad.detach().to("cpu", torch.float32, copy=True)
    return UnitResult(gradients, network_buffers(generator, discriminator), stats)


class SyncRule(PublishesWeights):
    """K units of mean gradients -> their image-weighted mean -> one Adam step for G and D."""

    mode: ClassVar[str] = "sync"

    def __init__(
        self,
        plan: SyncPlan,
        *,
        loss: GanLoss,
        latent_dim: int,
        learning_rate: float,
        betas: tuple[float, float],
    ) -> None:
        self.plan = plan
        self.loss = loss
        self.latent_dim = latent_dim
        self.learning_rate = learning_rate
        self.betas = betas

    def units_of(self, version: int) -> list[Unit]:
        """The K fixed units of update ``version``."""
        return [Unit(i) for i in self.plan.units_of_update(version)]

    def max_images(self, unit: Unit) -> int:
        """A unit's slice of the permutation."""
        return self.plan.images_per_unit

    def device_state_spec(
        self, generator: nn.Module, discriminator: nn.Module
    ) -> TensorSpec | None:
        """Sync units carry no state."""
        return None

    def server_optimizers(
        self, generator: nn.Module, discriminator: nn.Module
    ) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
        """DCGAN's Adam for G and D, at the coordinator."""
        return make_optimizers(generator, discriminator, self.learning_rate, self.betas)

    def ready(self, done: int, total: int, waited_seconds: float) -> bool:
        """Exactness: every unit of the update must be in."""
        return done == total

    def compute(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        dataset: ImageDataset,
        unit: Unit,
        *,
        device: torch.device,
        device_state: dict[str, torch.Tensor] | None = None,
        inputs: Inputs | None = None,
    ) -> UnitResult:
        """Mean G and D gradients over the unit's images, on the weights the models hold.

        Both gradients come from one set of weights (``simultaneous``): no optimizer steps here.
        BatchNorm runs in train mode over each micro-batch, so the models' buffers change: the
        caller restores the published weights before the next unit.
        """
        plan = self.plan
        generator.train()
        discriminator.train()
        images = plan.unit_images(unit.index)
        skipped = 0

        def batches() -> Iterator[MicroBatch]:
            nonlocal skipped
            for micro_index, indices in enumerate(plan.micro_batches(images)):
                real, missing = dataset.get_batch(indices)
                skipped += missing
                if real.shape[0] == 0:
                    continue
                z = plan.noise(unit.index, micro_index, real.shape[0], self.latent_dim)
                yield MicroBatch(real.to(device), z.to(device))

        with rng.seeded_global_rng(device, plan.seed, rng.DROPOUT, unit.index):
            stats = train_step(generator, discriminator, self.loss, batches(), "simultaneous")
        stats.skipped = skipped
        if stats.images == 0:
            raise DatasetError(
                f"unit {unit.index}: none of its {len(images)} images could "
                "be read on this machine (see the warnings above): check the dataset's files"
            )
        return collect_gradients(generator, discriminator, stats)

    def combine(
        self, state: ServerState, units: Sequence[Unit], results: Sequence[UnitResult]
    ) -> None:
        """Image-weighted mean of the gradients, one Adam step; BN buffers averaged by images."""
        gradients = weighted_mean([Contribution(r.images, r.parameters) for r in results])
        buffers = merge_buffers([Contribution(r.images, r.buffers) for r in results])
        apply_pseudo_gradients(state, gradients, buffers)
