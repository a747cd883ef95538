"""Training modes as rules behind one loop (see :mod:`ganfriends.rules.base`), one file each,
registered below (see :mod:`ganfriends.rules.registry` and docs/adding-a-mode.md).

``sync`` — K units of mean gradients, one optimizer step per version (:mod:`.sync`);
``federated`` — FeGAN rounds of local steps on device shards, combined deltas (:mod:`.federated`);
``md-gan`` — one generator at the server, a discriminator per device, per-image feedback
(:mod:`.mdgan`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ganfriends.errors import GanError
from ganfriends.rules import federated, mdgan, sync
from ganfriends.rules.base import Plan, Rule, ServerState, Unit, UnitResult, result_spec
from ganfriends.rules.registry import (
    get_mode,
    mode_names,
    modes,
    refused_setting,
    register,
    stored_mode,
)
from ganfriends.rules.sync import SyncRule
from ganfriends.rules.sync_plan import SyncPlan

if TYPE_CHECKING:
    from ganfriends.config import Config
    from ganfriends.data import ImageDataset
    from ganfriends.models import ModelConfig

# The modes, in the order --mode lists them: a new mode is its file and one line here.
register(sync.MODE)
register(federated.MODE)
register(mdgan.MODE)

# The modes registered above (the registry's functions also see modes registered later).
MODES = mode_names()
# Modes whose rule reads the dataset (labels, to place images on devices) at the coordinator.
NEEDS_DATASET = frozenset(m.name for m in modes() if m.needs_dataset)

__all__ = [
    "MODES",
    "NEEDS_DATASET",
    "Plan",
    "Rule",
    "ServerState",
    "SyncPlan",
    "SyncRule",
    "Unit",
    "UnitResult",
    "make_rule",
    "plan_from_config",
    "plan_from_dict",
    "result_spec",
]


def plan_from_dict(mode: str, data: dict[str, Any]) -> Plan:
    """The plan stored in ``runs.plan`` for a run of ``mode``."""
    try:
        return stored_mode(mode).plan.from_dict(data)
    except ValueError as exc:
        raise GanError(str(exc)) from exc


def plan_from_config(mode: str, config: Config, dataset: ImageDataset) -> Plan:
    """A new run's plan from the coordinator's settings and its dataset."""
    declared = get_mode(mode)
    refused = refused_setting(declared, config)
    if refused is not None:
        raise GanError(refused)
    try:
        return declared.plan.from_config(config, dataset)
    except ValueError as exc:
        raise GanError(str(exc)) from exc


def make_rule(
    mode: str,
    plan: Plan,
    config: Config,
    model_config: ModelConfig,
    dataset: ImageDataset | None = None,
) -> Rule:
    """The rule of a run: its plan, the run's training settings, and (modes that need it) its
    dataset."""
    declared = stored_mode(mode)
    if not isinstance(plan, declared.plan):
        raise GanError(f"a {mode} run cannot have a plan of type {type(plan).__name__}")
    return declared.rule(plan, config, model_config, dataset)
