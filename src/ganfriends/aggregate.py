"""Aggregation rules: pure functions from contributions to one set of tensors.

A rule only combines; the coordinator hands the result to a plain ``torch.optim`` optimizer, so
aggregation and optimisation stay separate concerns (Flower's strategies, without the fat ABC).

Determinism: contributions are summed in the order given (the coordinator passes them in unit
order) and in float64, so the result does not depend on which worker finished first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch


@dataclass(frozen=True)
class Contribution:
    """Tensors computed over ``images`` images (a work unit's mean gradients, say)."""

    images: int
    tensors: Mapping[str, torch.Tensor]


class Aggregator(Protocol):
    """Combines contributions that share tensor names and shapes."""

    def aggregate(self, contributions: Sequence[Contribution]) -> dict[str, torch.Tensor]:
        """One tensor per name."""
        ...


def _check(contributions: Sequence[Contribution]) -> None:
    if not contributions:
        raise ValueError("nothing to aggregate")
    names = set(contributions[0].tensors)
    for c in contributions[1:]:
        if set(c.tensors) != names:
            raise ValueError("contributions hold different tensor names")


def weighted_mean(contributions: Sequence[Contribution]) -> dict[str, torch.Tensor]:
    """sum_i n_i x_i / sum_i n_i: the mean over all images, when each x_i is a mean over n_i.

    This makes K units of mean gradients equal to one batch of all their images (for per-image
    losses), whatever the unit sizes.
    """
    _check(contributions)
    total = sum(c.images for c in contributions)
    if total <= 0:
        raise ValueError("contributions cover no images")
    out: dict[str, torch.Tensor] = {}
    for name, first in contributions[0].tensors.items():
        acc = torch.zeros(first.shape, dtype=torch.float64)
        for c in contributions:
            acc += c.tensors[name].to(torch.float64) * c.images
        out[name] = (acc / total).to(first.dtype)
    return out


class WeightedMean:
    """Mean weighted by the number of images (the default rule for class training)."""

    def aggregate(self, contributions: Sequence[Contribution]) -> dict[str, torch.Tensor]:
        """See :func:`weighted_mean`."""
        return weighted_mean(contributions)


class Mean:
    """Unweighted mean: every contribution counts the same (FedAvg with equal shares)."""

    def aggregate(self, contributions: Sequence[Contribution]) -> dict[str, torch.Tensor]:
        """Plain average."""
        return weighted_mean([Contribution(1, c.tensors) for c in contributions])


def merge_buffers(contributions: Sequence[Contribution]) -> dict[str, torch.Tensor]:
    """BatchNorm buffers after a round: running mean/var averaged by images; counters take the max.

    Each unit starts from the published running statistics and updates them (momentum 0.1) over its
    micro-batches; averaging the results is the stated rule for the next version's statistics, so
    eval-mode samples use statistics of real training batches rather than BN's initial ones (the
    seed coordinator never trained them). Integer buffers (``num_batches_tracked``) are counters:
    the max is the number of BN updates along any one path.
    """
    _check(contributions)
    floats = [
        Contribution(c.images, {k: v for k, v in c.tensors.items() if v.is_floating_point()})
        for c in contributions
    ]
    out = weighted_mean(floats) if floats[0].tensors else {}
    for name, tensor in contributions[0].tensors.items():
        if not tensor.is_floating_point():
            out[name] = torch.stack([c.tensors[name] for c in contributions]).max(dim=0).values
    return out
