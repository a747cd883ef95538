"""Aggregation: pure functions from weighted contributions to one set of tensors.

They only combine; a mode's rule (``ganfriends.rules``) hands the result to a plain ``torch.optim``
optimizer, so aggregation and optimisation stay separate concerns (Flower's ``aggregate()``
functions, without the strategy ABC).

Determinism: contributions are summed in the order given (the coordinator passes them in unit
order) and in float64, so the result does not depend on which worker finished first.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Contribution:
    """Tensors with their weight in a mean: the images a unit's mean gradients cover, or a
    federated member's share."""

    weight: float
    tensors: Mapping[str, torch.Tensor]


def _check(contributions: Sequence[Contribution]) -> None:
    if not contributions:
        raise ValueError("nothing to aggregate")
    names = set(contributions[0].tensors)
    for c in contributions[1:]:
        if set(c.tensors) != names:
            raise ValueError("contributions hold different tensor names")


def weighted_mean(contributions: Sequence[Contribution]) -> dict[str, torch.Tensor]:
    """sum_i w_i x_i / sum_i w_i, accumulated in float64 in the order given.

    With w_i the images x_i is a mean over, this is the mean over all images: K units of mean
    gradients equal one batch of all their images (for per-image losses), whatever the unit sizes.
    """
    _check(contributions)
    total = math.fsum(float(c.weight) for c in contributions)
    if not total > 0:
        raise ValueError("contributions have no positive total weight")
    out: dict[str, torch.Tensor] = {}
    for name, first in contributions[0].tensors.items():
        acc = torch.zeros(first.shape, dtype=torch.float64)
        for c in contributions:
            acc += c.tensors[name].to(torch.float64) * float(c.weight)
        out[name] = (acc / total).to(first.dtype)
    return out


def merge_buffers(contributions: Sequence[Contribution]) -> dict[str, torch.Tensor]:
    """BatchNorm buffers after a round: running mean/var averaged by weight; counters take the max.

    Each unit starts from the published running statistics and updates them (momentum 0.1) over its
    micro-batches; averaging the results is the stated rule for the next version's statistics, so
    eval-mode samples use statistics of real training batches rather than BN's initial ones (the
    seed coordinator never trained them). Integer buffers (``num_batches_tracked``) are counters:
    the max is the number of BN updates along any one path.
    """
    _check(contributions)
    floats = [
        Contribution(c.weight, {k: v for k, v in c.tensors.items() if v.is_floating_point()})
        for c in contributions
    ]
    out = weighted_mean(floats) if floats[0].tensors else {}
    for name, tensor in contributions[0].tensors.items():
        if not tensor.is_floating_point():
            out[name] = torch.stack([c.tensors[name] for c in contributions]).max(dim=0).values
    return out
