"""Iterating pre-ordered index batches, decoding file-backed images in worker processes.

The coordinator decides which indices form each batch and in which order; the loader only makes
them into tensors, in that same order. One DataLoader item is one whole batch, assembled (and its
unreadable images skipped and counted) inside a worker, so nothing but finished batches crosses
the process boundary.
"""

from __future__ import annotations

import multiprocessing.context
from collections.abc import Iterable, Iterator, Sequence
from typing import TypeVar

import torch
from torch.utils.data import DataLoader, Dataset

from ganfriends.data.base import ImageDataset

_T = TypeVar("_T")


class _BatchReader(Dataset[tuple[torch.Tensor, int]]):
    """A map-style view of a dataset whose key is a whole batch of indices."""

    def __init__(self, dataset: ImageDataset) -> None:
        self.dataset = dataset

    def __getitem__(self, indices: Sequence[int]) -> tuple[torch.Tensor, int]:
        return self.dataset.get_batch(indices)


def _as_is(item: _T) -> _T:
    # Module level, so spawned workers can unpickle it.
    return item


class BatchLoader:
    """Yields ``(images, skipped)`` for each batch of ``batches``, in order.

    In-memory datasets, or ``num_workers=0``, load in this process. Otherwise ``num_workers``
    processes decode ahead (``prefetch_factor`` batches each) while the trainer computes. The
    batches are consumed lazily, once: pass a list to iterate the loader more than once.
    """

    def __init__(
        self,
        dataset: ImageDataset,
        batches: Iterable[Sequence[int]],
        num_workers: int = 0,
        *,
        prefetch_factor: int = 2,
        multiprocessing_context: str | multiprocessing.context.BaseContext | None = None,
    ) -> None:
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers}")
        self.dataset = dataset
        self.batches = batches
        self.num_workers = num_workers
        self.prefetch_factor = prefetch_factor
        self.multiprocessing_context = multiprocessing_context

    @property
    def uses_workers(self) -> bool:
        """Whether iterating starts worker processes."""
        return self.num_workers > 0 and not self.dataset.in_memory

    def __iter__(self) -> Iterator[tuple[torch.Tensor, int]]:
        if not self.uses_workers:
            for indices in self.batches:
                yield self.dataset.get_batch(indices)
            return
        loader: DataLoader[tuple[torch.Tensor, int]] = DataLoader(
            _BatchReader(self.dataset),
            batch_size=None,  # each key from the sampler is already a whole batch
            sampler=self.batches,  # any iterable of keys works as a sampler
            num_workers=self.num_workers,
            collate_fn=_as_is,
            prefetch_factor=self.prefetch_factor,
            multiprocessing_context=self.multiprocessing_context,
        )
        yield from loader
