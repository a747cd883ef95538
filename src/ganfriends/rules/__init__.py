"""Training modes as rules behind one loop (see :mod:`ganfriends.rules.base`).

``sync`` — K units of mean gradients, one optimizer step per version (:mod:`.sync`);
``federated`` — FeGAN rounds of local steps on device shards, combined deltas (:mod:`.federated`);
``md-gan`` — one generator at the server, a discriminator per device, per-image feedback
(:mod:`.mdgan`).
"""

from __future__ import annotations

from typing import Any

import torch

from ganfriends.config import Config
from ganfriends.data import ImageDataset
from ganfriends.errors import GanError
from ganfriends.losses import make_loss
from ganfriends.models import ModelConfig
from ganfriends.rules.base import Plan, Rule, ServerState, Unit, UnitResult, result_spec
from ganfriends.rules.sync import SyncPlan, SyncRule

MODES = ("sync", "federated", "md-gan")
TRANSFER_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
# Modes whose rule reads the dataset's labels (to place images on devices) at the coordinator.
NEEDS_DATASET = frozenset({"federated"})

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
    if mode == "sync":
        try:
            return SyncPlan.from_dict(data)
        except ValueError as exc:
            raise GanError(str(exc)) from exc
    if mode == "federated":
        from ganfriends.rules.federated import FederatedPlan

        return FederatedPlan.from_dict(data)
    if mode == "md-gan":
        from ganfriends.rules.mdgan import MdganPlan

        return MdganPlan.from_dict(data)
    raise GanError(f"this version of ganfriends cannot run mode {mode!r}: upgrade it")


def plan_from_config(mode: str, config: Config, dataset: ImageDataset) -> Plan:
    """A new run's plan from the coordinator's settings and its dataset."""
    if mode != "sync" and config.coordinator.transfer_dtype != "float32":
        # Federated deltas and MD-GAN feedback are not rounded by their rules: refuse rather
        # than let a bfloat16 setting look as if it applied.
        raise GanError(
            f"--transfer-dtype {config.coordinator.transfer_dtype} applies to --mode sync only: "
            f"{mode} uploads float32"
        )
    try:
        if mode == "sync":
            training, coordinator = config.training, config.coordinator
            return SyncPlan(
                dataset_size=len(dataset),
                seed=training.seed,
                images_per_unit=coordinator.images_per_work_unit,
                units_per_update=coordinator.workunits_per_update,
                micro_batch=training.unit_micro_batch,
                epochs=training.epochs,
                max_updates=coordinator.max_iterations,
                update_rule=training.update_rule,
            )
        if mode == "federated":
            from ganfriends.rules.federated import FederatedPlan

            return FederatedPlan.from_config(config, dataset)
        if mode == "md-gan":
            from ganfriends.rules.mdgan import MdganPlan

            return MdganPlan.from_config(config, dataset)
    except ValueError as exc:
        raise GanError(str(exc)) from exc
    raise GanError(f"unknown mode {mode!r}: choose one of {', '.join(MODES)}")


def make_rule(
    mode: str,
    plan: Plan,
    config: Config,
    model_config: ModelConfig,
    dataset: ImageDataset | None = None,
) -> Rule:
    """The rule of a run: its plan, the run's training settings, and (federated) its dataset,
    whose labels place images on devices."""
    training = config.training
    loss = make_loss(training.loss)
    betas = (training.beta1, training.beta2)
    if mode == "sync":
        assert isinstance(plan, SyncPlan)
        return SyncRule(
            plan,
            loss=loss,
            latent_dim=model_config.latent_dim,
            learning_rate=training.learning_rate,
            betas=betas,
            transfer_dtype=TRANSFER_DTYPES[config.coordinator.transfer_dtype],
        )
    if mode == "federated":
        from ganfriends.rules.federated import FederatedPlan, FederatedRule

        assert isinstance(plan, FederatedPlan)
        if dataset is None:
            raise GanError("the federated rule needs the run's dataset to place images on devices")
        return FederatedRule(
            plan,
            dataset,
            loss=loss,
            latent_dim=model_config.latent_dim,
            learning_rate=training.learning_rate,
            betas=betas,
        )
    if mode == "md-gan":
        from ganfriends.rules.mdgan import MdganPlan, MdganRule

        assert isinstance(plan, MdganPlan)
        return MdganRule(
            plan,
            model_config=model_config,
            loss=loss,
            learning_rate=training.learning_rate,
            betas=betas,
        )
    raise GanError(f"unknown mode {mode!r}: choose one of {', '.join(MODES)}")
