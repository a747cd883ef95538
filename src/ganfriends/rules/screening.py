"""Screening a version's results before a rule combines them, whoever drives the loop.

Validation on arrival (``classroom/payload.py``) checks a result's form: names, shapes, finite
values within an absolute bound. Screening checks plausibility against the version's other
results, which only the driver sees together (the coordinator, or ``simulate``):

- a result whose every tensor is zero did no work (a free-rider's upload): it is refused;
- a group of tensors (G's, D's, MD-GAN's feedback) whose norm exceeds ``factor`` times the
  version's median for that group is scaled down to that bound (``aggregate.norm_scales``).

When two workers computed the same unit (a backup copy), :func:`copies_differ` compares their
results: honest copies agree to rounding, so a difference above ``COPY_TOLERANCE`` means one of
the two did not compute what it was given. And after combining, :func:`first_non_finite` guards
what is about to be published.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch

from ganfriends.aggregate import group_norms, norm_scales, scale_groups
from ganfriends.rules.base import ServerState, UnitResult

# Relative L2 difference of one tensor group between two honest copies of a unit. Copies from a
# CPU and a GPU differ by float rounding and non-deterministic kernels (TF32 matmuls on Ampere
# and later reach ~1e-3); anything worth cheating with (zeros, scaling, another batch, a stale
# model) moves a group by tens of percent or more.
COPY_TOLERANCE = 0.05


@dataclass(frozen=True)
class Clipped:
    """One group of one result that screening scaled down."""

    index: int  # position in the results screened
    group: str
    norm: float
    bound: float


def is_all_zero(result: UnitResult) -> bool:
    """True when every parameter tensor of ``result`` is zero: no honest unit sends that."""
    return all(not bool(t.any()) for t in result.parameters.values())


def copies_differ(
    first: UnitResult, second: UnitResult, tolerance: float = COPY_TOLERANCE
) -> tuple[str, float] | None:
    """The tensor group (and its relative L2 difference) where two copies of one unit disagree
    by more than ``tolerance``, the largest one; None when they agree."""
    differences = group_norms(
        {
            name: a.double() - second.parameters[name].double()
            for name, a in first.parameters.items()
        }
    )
    norms_a, norms_b = group_norms(first.parameters), group_norms(second.parameters)
    worst: tuple[str, float] | None = None
    for group, distance in differences.items():
        difference = distance / max(norms_a[group], norms_b[group], 1e-30)
        if difference > tolerance and (worst is None or difference > worst[1]):
            worst = (group, difference)
    return worst


def clip_results(
    results: Sequence[UnitResult], factor: float
) -> tuple[list[UnitResult], list[Clipped]]:
    """``results`` with outlying groups scaled to ``factor`` x the median norm, and what was
    scaled (empty for an honest version, whose results are returned unchanged)."""
    norms = [group_norms(r.parameters) for r in results]
    scales = norm_scales(norms, factor)
    out: list[UnitResult] = []
    clipped: list[Clipped] = []
    for i, (result, norm, scale) in enumerate(zip(results, norms, scales, strict=True)):
        touched = {g: s for g, s in scale.items() if s != 1.0}
        if not touched:
            out.append(result)
            continue
        clipped += [Clipped(i, g, norm[g], norm[g] * s) for g, s in touched.items()]
        out.append(replace(result, parameters=scale_groups(result.parameters, touched)))
    return out, clipped


def first_non_finite(state: ServerState) -> str | None:
    """The name of a NaN/inf tensor in the server's networks or optimizers, or None."""
    named: list[tuple[str, torch.Tensor]] = [
        *(("G " + k, v) for k, v in state.generator.state_dict().items()),
        *(("D " + k, v) for k, v in state.discriminator.state_dict().items()),
    ]
    for label, optimizer in (
        ("G optimizer", state.optimizer_g),
        ("D optimizer", state.optimizer_d),
    ):
        for param_state in optimizer.state.values():
            named += [(f"{label} {k}", v) for k, v in param_state.items() if torch.is_tensor(v)]
    for name, tensor in named:
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            return name
    return None
