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


def chain_running_stats(
    start: torch.Tensor, ends: Sequence[torch.Tensor], decays: Sequence[float]
) -> torch.Tensor:
    """The running statistic reached by running several parties' forwards one after another.

    BatchNorm's update ``r <- (1 - m) r + m s`` is affine, so T forwards from ``start`` give
    ``d * start + c`` with ``d = (1 - m) ** T`` and a term c that depends on the batches only.
    Party i reached ``ends[i]`` from the shared ``start`` with decay ``decays[i]``; chaining their
    c in order gives what one process running all their batches in that order holds. Computed in
    float64, then cast back.
    """
    origin = start.double()
    result = origin
    for end, decay in zip(ends, decays, strict=True):
        result = decay * result + (end.double() - decay * origin)
    return result.to(start.dtype)


# A unit's BatchNorm forwards are bounded by its micro-batches; a student's counter is not.
MAX_FORWARDS = 1_000_000


def chain_buffers(
    start: Mapping[str, torch.Tensor],
    ends: Sequence[Mapping[str, torch.Tensor]],
    momenta: Mapping[str, float],
) -> dict[str, torch.Tensor]:
    """BatchNorm buffers after units that each ran forwards from ``start``, chained in the order
    given: exactly the buffers of one process that ran all the units' micro-batches in turn.

    ``momenta`` maps each BatchNorm layer's buffer prefix (``dbuf.main.2``) to its momentum;
    every buffer in ``start`` must belong to one. A unit's forward count is its
    ``num_batches_tracked`` increase (clamped to [0, MAX_FORWARDS]: it is a student's number).
    """
    if not ends:
        raise ValueError("nothing to aggregate")
    out: dict[str, torch.Tensor] = {}
    for layer, momentum in momenta.items():
        tracked = layer + ".num_batches_tracked"
        t0 = int(start[tracked])
        forwards = [min(max(int(end[tracked]) - t0, 0), MAX_FORWARDS) for end in ends]
        decays = [(1.0 - momentum) ** t for t in forwards]
        for stat in (".running_mean", ".running_var"):
            name = layer + stat
            out[name] = chain_running_stats(start[name], [end[name] for end in ends], decays)
        out[tracked] = torch.full_like(start[tracked], t0 + sum(forwards))
    missing = set(start) - set(out)
    if missing:
        raise ValueError(f"buffers outside any BatchNorm layer: {sorted(missing)[:3]}")
    return out


# ---------------------------------------------------------------------------- screening
#
# One hostile upload can steer a mean: a gradient 1000x the honest size dominates the average and
# fills Adam's second moments, shrinking every later step. Each contribution's tensors are
# grouped by network ("g.*", "d.*", MD-GAN's "feedback") and a group whose L2 norm exceeds
# ``factor`` times the median of that group's norms across the version's contributions is scaled
# down to that bound (norm clipping, as in centred clipping / DP-FedAvg, around a robust centre).
# Honest contributions of one version have norms within a small factor of each other (2.8x at
# most in benchmarks/robustness.py), so the default factor 3 does not touch them: an honest run
# keeps its exact aggregation. The median is
# the lower one for an even count, so with two contributions the smaller one sets the bound.
# ``rules/screening.py`` builds on these: one vote per student, and a reference that also holds
# recent versions' (a student holding every unit of a round does not set it).


def tensor_group(name: str) -> str:
    """The group a result tensor belongs to: its prefix (``g``, ``d``) or its whole name."""
    return name.split(".", 1)[0]


def group_norms(tensors: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """L2 norm of each group of ``tensors`` (see :func:`tensor_group`), in float64."""
    squares: dict[str, float] = {}
    for name, tensor in tensors.items():
        group = tensor_group(name)
        value = float(tensor.detach().to(torch.float64).square().sum())
        squares[group] = squares.get(group, 0.0) + value
    return {group: math.sqrt(total) for group, total in squares.items()}


def lower_median(values: Sequence[float]) -> float:
    """The median, the lower of the two middle values for an even count."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    return ordered[(len(ordered) - 1) // 2]


def norm_scales(norms: Sequence[Mapping[str, float]], factor: float) -> list[dict[str, float]]:
    """Per contribution and group, the factor (<= 1) that brings its norm within ``factor`` times
    the group's lower median across ``norms``; 1.0 where it already is. ``factor <= 0``: no
    screening (all 1.0)."""
    scales: list[dict[str, float]] = [dict.fromkeys(n, 1.0) for n in norms]
    if factor <= 0 or not norms:
        return scales
    for group in norms[0]:
        bound = factor * lower_median([n[group] for n in norms])
        for i, n in enumerate(norms):
            if n[group] > bound:
                scales[i][group] = bound / n[group]
    return scales


def scale_groups(
    tensors: Mapping[str, torch.Tensor], scales: Mapping[str, float]
) -> dict[str, torch.Tensor]:
    """``tensors`` with each group multiplied by its scale (groups at 1.0 are passed through)."""
    out: dict[str, torch.Tensor] = {}
    for name, tensor in tensors.items():
        scale = scales.get(tensor_group(name), 1.0)
        out[name] = tensor if scale == 1.0 else tensor * scale
    return out
