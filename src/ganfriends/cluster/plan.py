"""The arithmetic of a class run: which images each work unit holds, which units each update uses.

An epoch is a pass over a permutation of the dataset drawn from (seed, epoch); a work unit is a
slice of it (default 320 images); the global unit number ``g`` lives in epoch
``g // units_per_epoch``. Update ``v`` (from weights version v to v+1) uses the fixed units
``[v*K, (v+1)*K)`` (K = units per update; the last update may have fewer). A unit's contents and
its noise therefore depend only on the run's config and seed — not on who computes it, nor when.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ganfriends import rng


@dataclass(frozen=True)
class RunPlan:
    """The numbers that fix a run's schedule (stored in its ``runs`` row)."""

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
