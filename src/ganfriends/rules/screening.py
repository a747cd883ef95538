"""Screening a version's results before a rule combines them, whoever drives the loop.

Validation on arrival (``classroom/payload.py``) checks a result's form: names, shapes, finite
values within an absolute bound. Screening checks plausibility against the version's other
results and against recent versions, which only the driver sees together (the coordinator, or
``simulate``). Its aim: **nothing one student sends moves the model beyond ``factor`` times a
reference that student cannot set, and an honest result is never touched** (an honest run keeps
its exact, bit-for-bit aggregation).

:func:`screen` does, per tensor group (G's, D's, MD-GAN's ``feedback``; the change of each
network's BatchNorm buffers from the published ones; a device state's Adam second moments):

- **One vote per student.** A student's results are reduced to one norm per group (the lower
  median of their results'), so a student holding several units of a version votes once: the
  median over students is a robust centre only if a student cannot stuff the ballot.
- **A reference the round alone does not set.** The reference is the lower median of the votes
  *and* of the references recorded by the last :data:`HISTORY_VERSIONS` accepted versions (as
  the median of FLTrust's idea of a trusted reference, here made of recent accepted norms): a
  student holding every unit of a round is one value among up to nine once history exists.
  Each version records the lower median of its votes, each vote clipped to the bound, so honest
  growth of the norms is followed without lag; a version voted by a single student records no
  more than the history's largest value (a student alone cannot raise the reference).
- **Clipping** (norm clipping around a robust centre, as in centred clipping, Karimireddy et
  al. 2021, and DP-FedAvg): a parameter group above ``factor`` x reference is scaled down to it;
  a buffer change above :data:`BUFFER_FACTOR` x reference is scaled down too (the buffers become
  a point between the published ones and the reported ones: a variance stays positive).
- **Near-zero**: a result whose parameter group is below :data:`NEAR_ZERO` x reference did no
  work (a free-rider's zeros plus one 1e-20): it is refused, not credited. Groups absent from a
  result (an alternating D-phase result has no G tensors) are not zero.
- **Device states** (per-device modes, stored as uploaded so they cannot be clipped): a state
  whose Adam second moments are beyond :data:`STATE_FACTOR` x the reference is refused (it would
  freeze the device's next, honest, units to nothing); the rule's own exact checks
  (``check_result``: Adam's moment invariant, step counts, bounded moves) refuse the rest.

Each group's norms are divided by the result's ``size`` (its unit's share of the largest unit of
the version: a weak federated client runs half the local steps), so units of different sizes
are compared per unit of work.

When two workers computed the same unit (a backup copy), :func:`copies_differ` compares their
results: honest copies agree to rounding, so a difference above ``COPY_TOLERANCE`` means one of
the two did not compute what it was given. And after combining, :func:`first_non_finite` guards
what is about to be published.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import torch

from ganfriends.aggregate import MAX_FORWARDS, group_norms, lower_median, scale_groups
from ganfriends.rules.base import Rule, ServerState, Unit, UnitResult
from ganfriends.rules.capabilities import result_problem

# Relative L2 difference of one tensor group between two honest copies of a unit. Copies from a
# CPU and a GPU differ by float rounding and non-deterministic kernels (TF32 matmuls on Ampere
# and later reach ~1e-3); anything worth cheating with (zeros, scaling, another batch, a stale
# model) moves a group by tens of percent or more.
COPY_TOLERANCE = 0.05

# Versions whose recorded references join the votes. Eight: a student alone in a round is one
# value among nine, and honest norms (which drift by a few percent a version, see the docs of
# ``benchmarks/robustness.py``) are followed within a few versions.
HISTORY_VERSIONS = 8

# A parameter group below this fraction of the reference did no work. Honest results measured
# stay above 0.3x (the smallest federated non-iid delta of a round, weak clients included):
# three orders of magnitude of margin, while zeros plus one 1e-20 are caught.
NEAR_ZERO = 1e-3
# Where no reference can be trusted (one other student at the first version), a parameter group
# at or below this norm did no work: honest float32 gradients and deltas are many orders above.
ABSOLUTE_ZERO = 1e-12

# Device states (Adam's bias-corrected second moments, as a norm of their square roots) of
# honest devices of one version stay within 1.2x of each other (measured, iid and non-iid); a
# state beyond this many times the reference is refused. Generous on purpose: a refusal blames.
STATE_FACTOR = 10.0

# BatchNorm running statistics move by a momentum step towards the batches' statistics, a
# difference of nearly equal numbers: honest changes of one version spread more (2.5x the
# reference measured, federated iid) than gradients or deltas. They only matter in eval mode
# (samples, scores) and positions between published and reported statistics are always valid,
# so their bound is looser: at least this many times the reference.
BUFFER_FACTOR = 10.0

BUFFER_GROUPS = {"gbuf": "gbuf~", "dbuf": "dbuf~"}  # groups of buffer *changes*, not values
STATE_GROUP = "~state"  # suffix of a device state's second-moment group (``g~state``)


@dataclass(frozen=True)
class Clipped:
    """One group of one result that screening scaled down."""

    index: int  # position in the results screened
    group: str
    norm: float
    bound: float


@dataclass(frozen=True)
class Refused:
    """A result screening refuses: it must not be combined nor credited."""

    index: int
    reason: str


@dataclass
class Screening:
    """What :func:`screen` decided for one version's results."""

    results: list[UnitResult]  # in the order given; clipped ones scaled, the others as given
    clipped: list[Clipped] = field(default_factory=list)
    refused: list[Refused] = field(default_factory=list)
    reference: dict[str, float] = field(default_factory=dict)  # what this version records

    @property
    def accepted(self) -> list[int]:
        """Indices of the results that may be combined."""
        out = {r.index for r in self.refused}
        return [i for i in range(len(self.results)) if i not in out]


History = Sequence[Mapping[str, float]]  # recorded references of recent versions, oldest first
StateCheck = Callable[[int, UnitResult], "str | None"]  # the rule's exact check of result i


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


# ------------------------------------------------------------------------------ norms


def buffer_changes(
    buffers: Mapping[str, torch.Tensor], published: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """The change of each floating-point buffer from the published one (counters left out)."""
    return {
        name: tensor.double() - published[name].double()
        for name, tensor in buffers.items()
        if tensor.is_floating_point() and name in published
    }


def state_moments(state: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """Per network prefix (``g``, ``d``), the norm of the square roots of Adam's bias-corrected
    second moments: sqrt(sum v / (1 - beta2^step)), the gradient scale the device's next steps
    are divided by. Comparable across devices whatever their number of past steps.

    ``beta2`` is not in the state (it is the run's): the bias correction uses 0.999, DCGAN's and
    every mode's; a state's correction only matters to compare devices, not to be exact.
    """
    totals: dict[str, float] = {}
    for name, tensor in state.items():
        if not name.endswith(".exp_avg_sq"):
            continue
        step = float(state.get(name[: -len("exp_avg_sq")] + "step", torch.tensor(1.0)))
        correction = 1.0 - 0.999 ** max(step, 1.0)
        net = name.split(".", 1)[0]
        totals[net] = totals.get(net, 0.0) + float(tensor.double().sum()) / correction
    return {net + STATE_GROUP: math.sqrt(max(total, 0.0)) for net, total in totals.items()}


def result_norms(
    result: UnitResult, published: Mapping[str, torch.Tensor] | None
) -> dict[str, float]:
    """Every group screening compares: parameter groups, buffer-change groups (against
    ``published``) and device-state groups."""
    norms = group_norms(result.parameters)
    if published is not None and result.buffers:
        for group, norm in group_norms(buffer_changes(result.buffers, published)).items():
            norms[BUFFER_GROUPS.get(group, group + "~")] = norm
    if result.device_state is not None:
        norms |= state_moments(result.device_state)
    return norms


def _votes(
    norms: Sequence[Mapping[str, float]], students: Sequence[str], keep: Sequence[int]
) -> dict[str, dict[str, float]]:
    """Per group, each student's vote: the lower median of their kept results' norms."""
    by_student: dict[str, dict[str, list[float]]] = {}
    for i in keep:
        for group, value in norms[i].items():
            by_student.setdefault(group, {}).setdefault(students[i], []).append(value)
    return {
        group: {student: lower_median(values) for student, values in voters.items()}
        for group, voters in by_student.items()
    }


def _references(votes: Mapping[str, Mapping[str, float]], history: History) -> dict[str, float]:
    """Per group, the lower median of the votes and of the recent recorded references."""
    recent = list(history)[-HISTORY_VERSIONS:]
    return {
        group: lower_median(values)
        for group, voters in votes.items()
        if (values := [*voters.values(), *(h[group] for h in recent if group in h)])
    }


# ------------------------------------------------------------------------------ screening


def screen(
    results: Sequence[UnitResult],
    students: Sequence[str],
    history: History,
    factor: float,
    *,
    published: Mapping[str, torch.Tensor] | None = None,
    sizes: Sequence[float] | None = None,
    check: StateCheck | None = None,
) -> Screening:
    """Screen one version's results (see the module docstring).

    ``students[i]`` names who sent result i (opaque: one vote per distinct name); ``history``
    holds the references recorded by recent accepted versions (:attr:`Screening.reference`,
    oldest first); ``published`` the buffers the version's units started from (``gbuf.*``,
    ``dbuf.*``; None: buffers are not screened); ``sizes[i]`` result i's unit's share of the
    version's largest unit (default 1); ``check(i, result)`` the rule's exact checks of a result
    (a reason to refuse it, or None). ``factor <= 0`` turns clipping and the relative checks
    off (the exact checks still run).
    """
    if len(students) != len(results):
        raise ValueError("one student per result")
    sizes = [1.0] * len(results) if sizes is None else list(sizes)
    refused: list[Refused] = []
    if check is not None:
        for i, result in enumerate(results):
            reason = check(i, result)
            if reason is not None:
                refused.append(Refused(i, reason))
    raw = [result_norms(r, published) for r in results]
    norms = [{g: n / sizes[i] for g, n in norm.items()} for i, norm in enumerate(raw)]
    keep = [i for i in range(len(results)) if i not in {r.index for r in refused}]
    if factor <= 0:
        return Screening(list(results), [], refused, {})

    # Refusals first, each result judged against the *other* students' votes and the history
    # (with its own vote in, a free-rider beside one honest student would be the lower median
    # and set its own reference), then the reference of the accepted ones.
    every_vote = _votes(norms, students, keep)
    for i in list(keep):
        reason = _implausible(norms[i], _judges(every_vote, history, students[i]), factor)
        if reason is not None:
            refused.append(Refused(i, reason))
            keep.remove(i)
    votes = _votes(norms, students, keep)
    references = _references(votes, history)

    out = list(results)
    clipped: list[Clipped] = []
    for i in keep:
        scales: dict[str, float] = {}
        for group, norm in norms[i].items():
            if group.endswith(STATE_GROUP):
                continue  # refused above if beyond its bound; a stored state is never scaled
            bound = _factor(group, factor) * references[group]
            if norm > bound:
                scales[group] = bound / norm
                clipped.append(Clipped(i, group, raw[i][group], raw[i][group] * scales[group]))
        if scales:
            out[i] = _scaled(results[i], scales, published)
    return Screening(out, clipped, sorted(refused, key=lambda r: r.index),
                     _record(votes, references, history, factor))  # fmt: skip


def _judges(
    votes: Mapping[str, Mapping[str, float]], history: History, student: str
) -> dict[str, float]:
    """Per group, the reference a result of ``student`` is judged against: the lower median of
    the *other* students' votes and of the history, where at least two such values exist. With
    its own vote in, a free-rider beside one honest student would be the lower median and set
    its own reference; with a single other value, that value could be a hostile student's (a
    result x1e4 would make the honest one look idle): there only :data:`ABSOLUTE_ZERO` judges,
    and the group is absent here."""
    recent = list(history)[-HISTORY_VERSIONS:]
    out: dict[str, float] = {}
    for group, voters in votes.items():
        values = [v for s, v in voters.items() if s != student]
        values += [h[group] for h in recent if group in h]
        if len(values) >= 2:
            out[group] = lower_median(values)
    return out


def _factor(group: str, factor: float) -> float:
    """The clip factor of a group: ``factor``, or at least :data:`BUFFER_FACTOR` for buffers."""
    return max(factor, BUFFER_FACTOR) if group in BUFFER_GROUPS.values() else factor


def _implausible(
    norms: Mapping[str, float], references: Mapping[str, float], factor: float
) -> str | None:
    """Why a result is refused outright (near-zero parameters, an outsized device state)."""
    for group, norm in norms.items():
        if "~" not in group and norm <= ABSOLUTE_ZERO:
            return f"its {group} tensors have norm {norm:.3g}: no work was done"
        reference = references.get(group)
        if reference is None:
            continue
        if group.endswith(STATE_GROUP):
            if norm > STATE_FACTOR * reference:
                times = f"{norm / reference:.3g}x" if reference > 0 else "far above"
                return (
                    f"its device state's {group[0].upper()} second moments are {times} the "
                    "reference (an honest state stays within a few times it)"
                )
        elif "~" not in group and norm < NEAR_ZERO * reference:
            return (
                f"its {group} tensors are {norm / reference:.3g}x the reference norm: "
                "no work was done"
            )
    return None


def _scaled(
    result: UnitResult, scales: Mapping[str, float], published: Mapping[str, torch.Tensor] | None
) -> UnitResult:
    """``result`` with parameter groups and buffer changes scaled (inputs are not modified)."""
    parameters = scale_groups(result.parameters, scales)
    buffers = dict(result.buffers)
    for prefix, group in BUFFER_GROUPS.items():
        scale = scales.get(group)
        if scale is None or published is None:
            continue
        for name, tensor in result.buffers.items():
            if not name.startswith(prefix + "."):
                continue
            start = published[name]
            if tensor.is_floating_point():
                # A point between the published and the reported statistics: a variance stays
                # positive, a mean between the two.
                moved = start.double() + scale * (tensor.double() - start.double())
                buffers[name] = moved.to(tensor.dtype)
            else:  # a counter: at most the forwards any unit can run
                buffers[name] = tensor.clamp(int(start), int(start) + MAX_FORWARDS)
    return replace(result, parameters=parameters, buffers=buffers)


def _record(
    votes: Mapping[str, Mapping[str, float]],
    references: Mapping[str, float],
    history: History,
    factor: float,
) -> dict[str, float]:
    """The references this version records: per group, the lower median of the votes, each
    clipped to the bound. With one voter, no more than the largest recent reference: a student
    alone cannot raise the bound, a round at a time, by the clip factor."""
    recent = list(history)[-HISTORY_VERSIONS:]
    record: dict[str, float] = {}
    for group, voters in votes.items():
        bound = _factor(group, factor) * references[group]
        value = lower_median([min(v, bound) for v in voters.values()])
        past = [h[group] for h in recent if group in h]
        if len(voters) == 1 and past:
            value = min(value, max(past))
        record[group] = value
    return record


def screen_units(
    rule: Rule,
    units: Sequence[Unit],
    results: Sequence[UnitResult],
    students: Sequence[str],
    history: History,
    factor: float,
    *,
    published: Mapping[str, torch.Tensor] | None,
    previous_states: Mapping[int, Mapping[str, torch.Tensor]],
) -> Screening:
    """:func:`screen` for a driver (the coordinator, ``simulate``): sizes from the rule's unit
    sizes, the rule's exact checks against each device's state before the unit
    (``previous_states``, by device; a device absent is fresh)."""
    largest = max(rule.max_images(u) for u in units)
    sizes = [rule.max_images(u) / largest for u in units]

    def check(i: int, result: UnitResult) -> str | None:
        device = units[i].device
        before = None if device is None else previous_states.get(device)
        return result_problem(rule, units[i], result, None if before is None else dict(before))

    return screen(results, students, history, factor, published=published, sizes=sizes, check=check)


def clip_results(
    results: Sequence[UnitResult], factor: float
) -> tuple[list[UnitResult], list[Clipped]]:
    """``results`` with outlying groups scaled to ``factor`` x the median norm, each result its
    own voter and no history (what :func:`screen` does on the round alone)."""
    screening = screen(results, [str(i) for i in range(len(results))], [], factor)
    return screening.results, screening.clipped


# ------------------------------------------------------------------------------ Adam's bounds
#
# Exact properties of any Adam state an honest chain of steps produces (Kingma & Ba 2015, §2.1,
# "the effective step size is bounded"), used to refuse device states and weight moves no honest
# unit can produce, whatever the gradients were.


def adam_moment_ratio(betas: tuple[float, float]) -> float:
    """The largest |exp_avg| / sqrt(exp_avg_sq) Adam reaches, for any gradients.

    m = (1-b1) sum b1^k g_k and v = (1-b2) sum b2^k g_k^2; by Cauchy-Schwarz
    |m| <= (1-b1) sqrt(sum (b1^2/b2)^k) sqrt(v / (1-b2)) <= C sqrt(v) with
    C = (1-b1) / sqrt((1-b2)(1 - b1^2/b2)). The bound is inductive: a state within it stays
    within it after any honest step, so a device's next honest unit passes too.
    """
    b1, b2 = betas
    return (1 - b1) / math.sqrt((1 - b2) * (1 - b1 * b1 / b2))


@functools.cache
def adam_step_bound(betas: tuple[float, float]) -> float:
    """The largest |update| / lr of one Adam step from a state within :func:`adam_moment_ratio`
    (bias corrections included: m_hat / sqrt(v_hat) = m / sqrt(v) * sqrt(1-b2^t) / (1-b1^t))."""
    b1, b2 = betas
    corrections = max(math.sqrt(1 - b2**t) / (1 - b1**t) for t in range(1, 100_000))
    return adam_moment_ratio(betas) * max(1.0, corrections)


# Rounding slack of the exact checks: float32 moments and weights are rounded every step.
EXACT_SLACK = 1.01


def adam_state_problem(
    state: Mapping[str, torch.Tensor], betas: tuple[float, float], prefix: str = ""
) -> str | None:
    """Why ``state``'s Adam moments (``<prefix><i>.exp_avg``/``exp_avg_sq``) cannot come from
    honest steps, or None. A first moment beyond C sqrt(second moment) would make the device's
    next (honest) step lr * m / (sqrt(v) + eps) arbitrarily large: up to 1e6 / 1e-8."""
    ratio = adam_moment_ratio(betas) * EXACT_SLACK
    for name, m in state.items():
        if not (name.startswith(prefix) and name.endswith(".exp_avg")):
            continue
        v = state[name + "_sq"]
        # Absolute slack: a gradient below ~3e-23 underflows v in float32 but not m.
        excess = m.double().abs() - (ratio * v.double().clamp(min=0).sqrt() + 1e-20)
        if bool((excess > 0).any()):
            return f"its Adam state {name} exceeds what any gradients give (|m| > C sqrt(v))"
    return None


def step_count_problem(
    state: Mapping[str, torch.Tensor],
    previous: Mapping[str, torch.Tensor] | None,
    steps: int,
    prefix: str = "",
) -> str | None:
    """Why ``state``'s Adam step counts did not advance by a whole number of steps, at least
    one and at most ``steps``, from ``previous``'s (a fresh device: from 0), or None. (A unit
    may take fewer steps than planned: a local step whose images are all unreadable is skipped.)
    """
    for name, count in state.items():
        if not (name.startswith(prefix) and name.endswith(".step")):
            continue
        before = 0.0 if previous is None else float(previous[name])
        taken = float(count) - before
        if not (taken == int(taken) and 1 <= taken <= steps):
            return (
                f"its Adam step count {name} went from {before:g} to {float(count):g}; "
                f"a unit takes 1 to {steps} steps"
            )
    return None


def move_problem(
    moved: Mapping[str, torch.Tensor], start: Mapping[str, torch.Tensor], bound: float
) -> str | None:
    """Why a tensor of ``moved`` is further than ``bound`` (per coordinate) from ``start``'s, or
    None: honest Adam steps move each coordinate by at most lr x :func:`adam_step_bound`."""
    for name, tensor in moved.items():
        distance = (tensor.double() - start[name].double()).abs()
        # Rounding: the float32 difference of two weights of magnitude |w| is exact to ~|w|ε.
        slack = bound * EXACT_SLACK + 1e-6 * (1.0 + start[name].double().abs())
        if bool((distance > slack).any()):
            worst = float(distance.max())
            return f"{name} moved {worst:.3g} in one unit; honest steps move it at most {bound:.3g}"
    return None


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
