"""A worker's job: one work unit through the shared training step (simultaneous rule)."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from ganfriends.cluster.payload import UnitResult, collect_result
from ganfriends.cluster.plan import RunPlan
from ganfriends.data import ImageDataset
from ganfriends.losses import GanLoss
from ganfriends.step import MicroBatch, train_step


def compute_unit(
    generator: nn.Module,
    discriminator: nn.Module,
    loss: GanLoss,
    dataset: ImageDataset,
    plan: RunPlan,
    unit_index: int,
    *,
    latent_dim: int,
    device: torch.device,
) -> UnitResult:
    """Mean G and D gradients over the unit's images, computed on the weights the models hold.

    Both gradients come from one set of weights (``simultaneous``): no optimizer steps here; the
    coordinator aggregates units and steps. BatchNorm runs in train mode over each micro-batch,
    so the models' buffers change: the caller reloads the published weights before the next unit.
    """
    generator.train()
    discriminator.train()
    images = plan.unit_images(unit_index)

    def batches() -> Iterator[MicroBatch]:
        for micro_index, indices in enumerate(plan.micro_batches(images)):
            real, _skipped = dataset.get_batch(indices)
            if real.shape[0] == 0:
                continue
            z = plan.noise(unit_index, micro_index, real.shape[0], latent_dim)
            yield MicroBatch(real.to(device), z.to(device))

    stats = train_step(generator, discriminator, loss, batches(), "simultaneous")
    if stats.images == 0:
        raise ValueError(f"unit {unit_index} has no readable image")
    return collect_result(generator, discriminator, stats)
