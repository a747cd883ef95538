"""What only some rules do, as small protocols, and the free functions callers ask them through.

A rule has a capability when it needs it (``isinstance`` against these runtime-checkable
protocols); a rule without one behaves as the free function's default says: its workers compute on
the published G and D, its devices keep no state and never move, its results have no exact check
beyond their spec.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import nn

from ganfriends.blobs import TensorSpec
from ganfriends.rules.base import Rule, ServerState, Unit, UnitResult
from ganfriends.rules.work import Inputs


@runtime_checkable
class PublishesInputs(Protocol):
    """A rule whose workers compute on tensors each version publishes (MD-GAN's generated
    batches) instead of the published G and D."""

    def inputs_of(self, state: ServerState, version: int) -> Inputs | None:
        """What version ``version`` publishes for the workers (None once the run is done).

        Called once per version, right after the version's weights are final and before they
        are stored (it may move BatchNorm running statistics, as a training forward does).
        """
        ...

    def inputs_spec(self, generator: nn.Module, discriminator: nn.Module) -> TensorSpec:
        """The tensors of :meth:`inputs_of`, for validation on arrival."""
        ...

    def inputs_needed(self, unit: Unit) -> tuple[str, ...]:
        """The names of the published inputs ``unit`` reads (all a worker has to download)."""
        ...


@runtime_checkable
class KeepsDeviceState(Protocol):
    """A rule whose devices keep a local state between their units (federated's local Adam,
    MD-GAN's discriminators), stored per device and sent back with each result."""

    def device_state_spec(
        self, generator: nn.Module, discriminator: nn.Module
    ) -> TensorSpec | None:
        """The tensors of a device's state (None: this run keeps none, e.g. a reset policy)."""
        ...


@runtime_checkable
class MovesDeviceStates(Protocol):
    """A rule that moves device states between devices (MD-GAN's discriminator swaps)."""

    def device_moves(self, version: int) -> list[int] | None:
        """A permutation applied to the device states when publishing ``version``: the state of
        device n becomes device ``moves[n]``'s; None: no move."""
        ...


@runtime_checkable
class ChecksResults(Protocol):
    """A rule whose results have exact properties a screening can check (bounded Adam moves)."""

    def check_result(
        self, unit: Unit, result: UnitResult, previous_state: dict[str, torch.Tensor] | None
    ) -> str | None:
        """Why ``result`` cannot be an honest result of ``unit``, from exact properties of the
        computation (Adam's bounded steps and moments, step counts), or None. ``previous_state``
        is the device state the unit started from (None: a fresh device). Screening refuses
        such a result; a check must therefore hold for every honest result, whatever the data.
        """
        ...


def publishes_weights(rule: Rule) -> bool:
    """Whether workers compute on the published G and D (else on published inputs)."""
    return not isinstance(rule, PublishesInputs)


def inputs_of(rule: Rule, state: ServerState, version: int) -> Inputs | None:
    """What version ``version`` publishes besides weights (see :class:`PublishesInputs`)."""
    return rule.inputs_of(state, version) if isinstance(rule, PublishesInputs) else None


def device_state_spec(
    rule: Rule, generator: nn.Module, discriminator: nn.Module
) -> TensorSpec | None:
    """The tensors of a device's state, or None for a rule whose units carry none."""
    if isinstance(rule, KeepsDeviceState):
        return rule.device_state_spec(generator, discriminator)
    return None


def device_moves(rule: Rule, version: int) -> list[int] | None:
    """How device states move when ``version`` is published (None: they stay)."""
    return rule.device_moves(version) if isinstance(rule, MovesDeviceStates) else None


def result_problem(
    rule: Rule, unit: Unit, result: UnitResult, previous_state: dict[str, torch.Tensor] | None
) -> str | None:
    """Why ``result`` cannot be honest by the rule's exact checks, or None (also for a rule
    without any: a sync gradient has no a-priori bound)."""
    if isinstance(rule, ChecksResults):
        return rule.check_result(unit, result, previous_state)
    return None
