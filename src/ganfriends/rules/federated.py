"""The ``federated`` mode: FeGAN (Guerraoui et al., 2020) rounds on fixed device shards.

Devices 0..N each hold a fixed shard of the training set (``federated.partition``: iid, or FeGAN's
non-iid scheme). Round r (= version r -> r+1):

1. the round's members are device 0 (FeGAN's server shard) and ceil(C*N) clients, drawn at random
   from (seed, r) or by FeGAN's class-balanced sampling;
2. each member's unit starts from the round's published G and D and the device's own local Adam
   state (kept in the database per device, so any worker can serve any device) and runs E local
   *alternating* steps of the shared training step (weak clients: E/2) on batches of its shard,
   with data order and noise keyed by (seed, round, device, step) — the same on any worker;
3. it returns its weight delta (G and D), its final BatchNorm buffers and its new local state;
4. the coordinator combines the deltas with the chosen weights (FedAvg by images, uniform, or
   FeGAN's KL weights) and hands ``-delta`` to an outer optimizer as a pseudo-gradient
   (:mod:`ganfriends.rules.local_steps`, shared with the sync mode's local steps): SGD with lr 1
   *is* FedAvg; Nesterov or Adam give FedOpt/DiLoCo-style outer steps.

Unlike FeGAN's code, no stale local gradient is applied after the average (the average *is* the
new model), a crashed device never rescales the model (weights are normalised over the members
that reported), and every random draw is seeded.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from ganfriends import rng
from ganfriends.blobs import TensorSpec
from ganfriends.data import ImageDataset
from ganfriends.errors import DatasetError, GanError
from ganfriends.federated import (
    BalancedSampler,
    Partition,
    iid_partition,
    kl_entropies,
    member_weights,
    members_per_round,
    non_iid_partition,
    random_members,
    round_members,
    weak_devices,
)
from ganfriends.federated.local_state import (
    local_state_spec,
)
from ganfriends.models import ModelConfig
from ganfriends.rules.base import (
    RuleBase,
    ServerState,
    Unit,
    UnitResult,
    result_spec,
)
from ganfriends.rules.local_steps import SETTINGS as LOCAL_STEP_SETTINGS
from ganfriends.rules.local_steps import (
    LocalRun,
    OuterStep,
    apply_mean_change,
    change_problem,
    outer_optimizers,
)
from ganfriends.rules.registry import Fixed, Mode
from ganfriends.rules.work import FRESH, UnitStart, Workspace
from ganfriends.step import MicroBatch, StepStats

if TYPE_CHECKING:
    from ganfriends.config import Config

FEGAN_LOCAL_STEPS = 30  # E when --local-steps is not given (FeGAN's default)
# Plan fields the `federated` config section gives as they are, under the same names.
AS_CONFIGURED = (
    "fraction", "batch_size", "non_iid", "magic_num", "weighting", "balanced_sampling",
    "weak_fraction", "round_timeout",
)  # fmt: skip


@dataclass(frozen=True)
class FederatedPlan:
    """The numbers that fix a federated run (stored as ``runs.plan``)."""

    dataset_size: int
    seed: int
    clients: int  # N; devices are 0..N
    fraction: float  # C
    local_steps: int  # E
    batch_size: int  # B
    rounds: int
    epochs: int  # nominal: the passes --epochs asked for (rounds derive from it if not given)
    non_iid: bool = False
    magic_num: int = 3000
    num_classes: int | None = None
    weighting: str = "fedavg"
    balanced_sampling: bool = False
    weak_fraction: float = 0.0
    round_timeout: float | None = None
    local_state: str = "keep"  # "reset": a fresh local Adam every round, no state on the wire
    # The outer step (stored plans name it the server's); momentum None: nesterov's is 0.9;
    # D's learning rate and momentum when they differ from G's.
    server_optimizer: str = "sgd"
    server_lr: float = 1.0
    server_momentum: float | None = None
    server_lr_d: float | None = None
    server_momentum_d: float | None = None

    def __post_init__(self) -> None:
        if self.local_state not in ("keep", "reset"):
            raise ValueError(f"unknown local state policy {self.local_state!r}")
        _ = (self.outer_g, self.outer_d)  # building each network's OuterStep validates it
        if self.clients < 1 or self.rounds < 1 or self.local_steps < 1 or self.batch_size < 1:
            raise ValueError("devices, rounds, local steps and batch size must be at least 1")
        if self.dataset_size < self.clients + 1:
            raise ValueError(
                f"{self.clients + 1} devices cannot share {self.dataset_size} images: "
                "lower --devices"
            )

    @classmethod
    def from_config(cls, config: Config, dataset: ImageDataset) -> FederatedPlan:
        """A new run's plan from the coordinator's (or simulator's) settings."""
        fed, training = config.federated, config.training
        needs_labels = fed.non_iid or fed.balanced_sampling or fed.weighting.startswith("kl-")
        if needs_labels and dataset.labels() is None:
            raise GanError(
                f"the {dataset.name} dataset has no class labels, which --non-iid, "
                "--balanced-sampling and the kl-* weightings need (FeGAN's README says the same): "
                "use a labelled dataset (fashion-mnist, mnist, cifar10, or a folder of class "
                "sub-folders: DIR/<class>/<image>) or iid with fedavg"
            )
        coordinator = config.coordinator
        local_steps = coordinator.local_steps or FEGAN_LOCAL_STEPS
        members = members_per_round(fed.devices, fed.fraction) + 1
        per_round = members * local_steps * fed.batch_size
        if fed.rounds is None:
            epochs = training.epochs
            rounds = max(1, math.ceil(epochs * len(dataset) / per_round))
        else:  # the passes the given rounds make, for progress displays
            rounds = fed.rounds
            epochs = max(1, math.ceil(rounds * per_round / len(dataset)))
        return cls(
            dataset_size=len(dataset),
            seed=training.seed,
            clients=fed.devices,
            rounds=rounds,
            epochs=epochs,
            num_classes=dataset.num_classes(),
            local_steps=local_steps,
            local_state=coordinator.local_state or "keep",
            server_optimizer=coordinator.outer_optimizer,
            server_lr=coordinator.outer_lr,
            server_momentum=coordinator.outer_momentum,
            server_lr_d=coordinator.outer_lr_d,
            server_momentum_d=coordinator.outer_momentum_d,
            **{name: getattr(fed, name) for name in AS_CONFIGURED},
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FederatedPlan:
        """Inverse of :meth:`to_dict` (unknown keys ignored: a newer version's plan)."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def to_dict(self) -> dict[str, Any]:
        """The JSON stored in ``runs.plan``."""
        return asdict(self)

    @property
    def outer_g(self) -> OuterStep:
        """G's outer step."""
        return OuterStep(self.server_optimizer, self.server_lr, self.server_momentum)

    @property
    def outer_d(self) -> OuterStep:
        """D's outer step (G's unless D's learning rate or momentum is given)."""
        return OuterStep(
            self.server_optimizer,
            self.server_lr if self.server_lr_d is None else self.server_lr_d,
            self.server_momentum if self.server_momentum_d is None else self.server_momentum_d,
        )

    @property
    def members_per_round(self) -> int:
        """Devices training each round: device 0 and ceil(C*N) clients."""
        return members_per_round(self.clients, self.fraction) + 1

    @property
    def total_versions(self) -> int:
        """One version per round."""
        return self.rounds

    @property
    def images_per_version(self) -> int:
        """Images a full round trains (weak clients and tiny shards make it fewer)."""
        return self.members_per_round * self.local_steps * self.batch_size

    @property
    def versions_per_step(self) -> int:
        """Each version is a whole step."""
        return 1

    def epochs_done(self, version: int) -> float:
        """Nominal passes over the data after ``version`` rounds."""
        return version * self.images_per_version / self.dataset_size

    def describe(self) -> str:
        """One line for the coordinator's log."""
        sampling = "balanced" if self.balanced_sampling else "random"
        split = f"non-iid (magic {self.magic_num})" if self.non_iid else "iid"
        return (
            f"{self.clients} devices + device 0, {split}; {self.members_per_round} per round "
            f"({sampling}), E={self.local_steps} local steps of B={self.batch_size}, "
            f"{self.weighting} weights, outer {self.outer_g.describe()}"
            f"{'' if self.outer_d == self.outer_g else f' (D {self.outer_d.describe()})'}, "
            f"{self.rounds} rounds"
        )


class FederatedRule(RuleBase[FederatedPlan]):
    """FeGAN rounds: local alternating steps per device, weighted deltas, a server step."""

    def __init__(
        self,
        plan: FederatedPlan,
        config: Config,
        model_config: ModelConfig,
        dataset: ImageDataset | None = None,
    ) -> None:
        super().__init__(plan, config, model_config)
        if dataset is None:
            raise GanError("the federated rule needs the run's dataset to place images on devices")
        self.dataset = dataset
        self.latent_dim = model_config.latent_dim
        if len(dataset) != plan.dataset_size:
            raise GanError(f"the run has {plan.dataset_size} images, this dataset {len(dataset)}")
        self.weak = weak_devices(plan.clients, plan.weak_fraction)

    # ------------------------------------------------------------------ data placement

    @cached_property
    def _labels(self) -> np.ndarray[Any, np.dtype[np.int64]] | None:
        labels = self.dataset.labels()
        return None if labels is None else np.asarray(labels, dtype=np.int64)

    @cached_property
    def partition(self) -> Partition:
        """Which images each device holds (a pure function of the plan and the labels)."""
        plan = self.plan
        try:
            if not plan.non_iid:
                return iid_partition(plan.dataset_size, plan.clients, plan.seed)
            assert self._labels is not None and plan.num_classes is not None
            return non_iid_partition(
                self._labels,
                plan.clients,
                magic_num=plan.magic_num,
                seed=plan.seed,
                num_classes=plan.num_classes,
            )
        except ValueError as exc:  # e.g. a device whose classes the data lacks
            raise GanError(f"cannot split the data over {plan.clients + 1} devices: {exc}") from exc

    @cached_property
    def histograms(self) -> np.ndarray[Any, np.dtype[np.int64]]:
        """Devices x classes image counts (needs labels)."""
        assert self._labels is not None and self.plan.num_classes is not None
        return self.partition.histograms(self._labels, self.plan.num_classes)

    @cached_property
    def _sampler(self) -> BalancedSampler:
        return BalancedSampler(self.histograms, self.plan.members_per_round - 1)

    @cached_property
    def _entropies(self) -> np.ndarray[Any, np.dtype[np.float64]] | None:
        if not self.plan.weighting.startswith("kl-"):
            return None
        return kl_entropies(self.histograms)

    # ------------------------------------------------------------------ schedule

    def members(self, round_index: int) -> list[int]:
        """Device 0 and the clients chosen for a round."""
        plan = self.plan
        count = plan.members_per_round - 1
        if plan.balanced_sampling:
            clients = self._sampler.members(round_index)
        else:
            clients = random_members(plan.clients, count, plan.seed, round_index)
        return round_members(clients)

    def units_of(self, version: int) -> list[Unit]:
        """One unit per member of round ``version``; unit index = round * (N + 1) + device."""
        if version >= self.plan.rounds:
            return []
        width = self.plan.clients + 1
        return [Unit(version * width + d, d) for d in self.members(version)]

    def local_steps(self, device: int) -> int:
        """E, or E/2 for a weak client (FeGAN's weak workers, at least one step)."""
        steps = self.plan.local_steps
        return max(1, steps // 2) if device in self.weak else steps

    def max_images(self, unit: Unit) -> int:
        """E local steps of at most B images."""
        assert unit.device is not None
        return self.local_steps(unit.device) * self.plan.batch_size

    def ready(self, done: int, total: int, waited_seconds: float) -> bool:
        """Every member reported, or after the round timeout a quorum of at least half."""
        if done == total:
            return True
        timeout = self.plan.round_timeout
        return timeout is not None and waited_seconds >= timeout and 2 * done >= total

    # ------------------------------------------------------------------ worker side

    def device_state_spec(
        self, generator: nn.Module, discriminator: nn.Module
    ) -> TensorSpec | None:
        """A device's local Adam moments (None when every round starts a fresh local Adam)."""
        if self.plan.local_state == "reset":
            return None
        return local_state_spec(generator, discriminator)

    def batches(self, round_index: int, device: int) -> list[list[int]]:
        """Dataset indices of each local step: fresh seeded passes over the device's shard.

        A shard smaller than B gives batches of the whole shard (FeGAN's loader with a shard of
        5 images yields batches of 5).
        """
        shard = self.partition.shards[device]
        n = len(shard)
        size = min(self.plan.batch_size, n)
        steps = self.local_steps(device)
        passes = math.ceil(steps * size / n)
        order = torch.cat(
            [
                rng.permutation(n, self.plan.seed, rng.FED_DATA_ORDER, round_index, device, k)
                for k in range(passes)
            ]
        )
        picked = shard[order.numpy()]
        return [picked[s * size : (s + 1) * size].tolist() for s in range(steps)]

    def result_spec(
        self, generator: nn.Module, discriminator: nn.Module, version: int | None = None
    ) -> TensorSpec:
        """Per-parameter deltas of G and D and both networks' buffers."""
        return result_spec(generator, discriminator)

    def compute(self, work: Workspace, unit: Unit, start: UnitStart = FRESH) -> UnitResult:
        """E local alternating steps from the round's model; returns the delta and new state."""
        assert unit.device is not None
        generator, discriminator, device = work.generator, work.discriminator, work.device
        width = self.plan.clients + 1
        round_index, d = divmod(unit.index, width)
        if d != unit.device:
            raise GanError(f"unit {unit.index} is not device {unit.device}'s")
        generator.train()
        discriminator.train()
        local = LocalRun(
            generator, discriminator, self.learning_rate, self.betas,
            keep=self.plan.local_state == "keep", state=start.device_state,
        )  # fmt: skip
        stats = StepStats()
        with rng.seeded_global_rng(device, self.plan.seed, rng.DROPOUT, round_index, d):
            for step, indices in enumerate(self.batches(round_index, d)):
                real, missing = work.dataset.get_batch(indices)
                stats.skipped += missing
                if real.shape[0] == 0:
                    continue
                z = rng.latent_noise(
                    real.shape[0], self.latent_dim, self.plan.seed, rng.FED_NOISE,
                    round_index, d, step,
                )  # fmt: skip
                batch = MicroBatch(real.to(device), z.to(device))
                stats += local.step(self.loss, [batch], "alternating")
        if stats.images == 0:
            raise DatasetError(
                f"device {d}: none of its images could be read on this machine (see the "
                "warnings above): check the dataset's files"
            )
        return local.result(stats)

    def check_result(
        self, unit: Unit, result: UnitResult, previous_state: dict[str, torch.Tensor] | None
    ) -> str | None:
        """Exact bounds of E local Adam steps: no delta coordinate beyond E * lr * the Adam
        step bound (an absolute bound, history or not: at most ~18 honest rounds' moves for
        DCGAN's betas), a device state within Adam's moment invariant, step counts advanced
        by at most E."""
        assert unit.device is not None
        steps = self.local_steps(unit.device)
        return change_problem(result, previous_state, steps, self.learning_rate, self.betas)

    # ------------------------------------------------------------------ server side

    def server_optimizers(
        self, generator: nn.Module, discriminator: nn.Module
    ) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
        """The outer optimizers the combined delta is applied with."""
        return outer_optimizers(generator, discriminator, self.plan.outer_g, self.plan.outer_d)

    def weights(self, devices: Sequence[int]) -> list[float]:
        """The members' shares in the combined delta (sum to 1)."""
        weights = member_weights(
            self.plan.weighting, list(devices), self.partition.sizes(), self._entropies
        )
        return [float(w) for w in weights]

    def combine(
        self, state: ServerState, units: Sequence[Unit], results: Sequence[UnitResult]
    ) -> None:
        """Weighted mean of the members' deltas, applied as -delta by the server optimizer."""
        devices = [u.device for u in units]
        assert all(d is not None for d in devices)
        apply_mean_change(state, self.weights([int(d) for d in devices if d is not None]), results)


MODE = Mode(
    name="federated",
    description="FeGAN rounds of local steps on device shards, combined by weights",
    plan=FederatedPlan,
    rule=FederatedRule,
    needs_dataset=True,
    settings=(
        "federated",
        *LOCAL_STEP_SETTINGS,
    ),
    fixed=(
        Fixed("coordinator.transfer_dtype", "float32", "uploads float32"),
        Fixed("coordinator.download_dtype", "float32", "downloads float32"),
    ),
)
