"""The one data schedule: which images and which noise every optimizer step of a run uses.

A run is a sequence of steps over batches of ``batch_size`` images. Step ``s`` lies in epoch
``s // steps_per_epoch``; an epoch is a permutation of the dataset drawn from (seed, epoch), cut
into whole batches (a tail of less than one batch is left out that epoch); the step's noise is
drawn for its whole batch from (seed, step), row i for image i.

train-local takes a step's batch whole (or, under torchrun, each process its slice); a class run
cuts it into K work units of U images (``batch_size = K * U``) computed by whoever claims them.
Either way each image meets the same noise row in the same step, so a class run and a local run
with the same seed, batch and micro-batch end with the same model (tests/acceptance).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch

from ganfriends import rng


@lru_cache(maxsize=4)
def _epoch_order(dataset_size: int, seed: int, epoch: int) -> torch.Tensor:
    # One permutation per epoch, drawn once however many units or steps read it.
    return rng.permutation(dataset_size, seed, rng.DATA_ORDER, epoch)


@dataclass(frozen=True)
class BatchSchedule:
    """Images and noise of every step of a run with global batch ``batch_size``."""

    dataset_size: int
    batch_size: int
    seed: int

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError("the batch size must be at least 1")
        if self.batch_size > self.dataset_size:
            raise ValueError(
                f"a batch of {self.batch_size} images is larger than the dataset "
                f"({self.dataset_size} images)"
            )

    @property
    def steps_per_epoch(self) -> int:
        """Whole batches in one pass over the dataset."""
        return self.dataset_size // self.batch_size

    def epoch_of(self, step: int) -> int:
        """The epoch step ``step`` belongs to."""
        return step // self.steps_per_epoch

    def images(self, step: int, rows: slice = slice(None)) -> list[int]:
        """Dataset indices of step ``step``'s batch (or of ``rows`` of it)."""
        epoch, position = divmod(step, self.steps_per_epoch)
        start = position * self.batch_size
        batch = _epoch_order(self.dataset_size, self.seed, epoch)[start : start + self.batch_size]
        return batch[rows].tolist()

    def noise(self, step: int, latent_dim: int, rows: slice = slice(None)) -> torch.Tensor:
        """z (n, latent_dim, 1, 1) of step ``step``'s batch (or of ``rows`` of it)."""
        return rng.latent_noise(self.batch_size, latent_dim, self.seed, rng.NOISE, step)[rows]


def micro_slices(start: int, stop: int, size: int) -> list[slice]:
    """Rows ``[start, stop)`` of a batch in micro-batches of ``size`` (the last may be smaller)."""
    return [slice(i, min(i + size, stop)) for i in range(start, stop, size)]
