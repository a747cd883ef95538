"""What a training mode is: a *plan* (its schedule, stored as data) and a *rule* (how one unit is
computed and how a version's units are combined into the next version).

Every mode runs on the same loop, whoever drives it — the PostgreSQL transport (``classroom/``)
or the in-process simulator (``simulate.py``):

    version v published -> units = rule.units_of(v) -> each unit: rule.compute(...) on v's weights
    (or, for rules that publish inputs, on v's published inputs)
    -> once rule.ready(done, total, waited): rule.combine(server, results) -> publish v+1
    (with inputs_of(rule, server, v+1), and the device states moved by device_moves(rule, v+1):
    see :mod:`ganfriends.rules.capabilities`)

The transport owns leases, uploads, validation against ``rule.result_spec``, crash safety and
storage; the rule owns the science. A rule never touches the database, and the transport never
looks inside a result beyond its spec.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import torch
from torch import nn

from ganfriends.blobs import TensorSpec, buffer_spec, parameter_spec
from ganfriends.data import ImageDataset
from ganfriends.losses import make_loss
from ganfriends.models import ModelConfig
from ganfriends.rules.work import FRESH, UnitStart, Workspace
from ganfriends.step import StepStats, make_optimizers

if TYPE_CHECKING:
    from ganfriends.config import Config


class Plan(Protocol):
    """A mode's schedule: everything that fixes which units exist, stored in ``runs.plan``."""

    @property
    def seed(self) -> int:
        """The seed every random draw of the run derives from."""
        ...

    @property
    def epochs(self) -> int:
        """Passes over the data the run aims at (nominal for federated rounds)."""
        ...

    @property
    def total_versions(self) -> int:
        """Versions the run publishes after version 0 (optimizer steps / rounds)."""
        ...

    @property
    def images_per_version(self) -> int:
        """Images trained per version when every unit reports (for ETAs)."""
        ...

    @property
    def versions_per_step(self) -> int:
        """Versions one optimizer step publishes: 2 for a class run of the alternating rule (D's
        step, then G's), 1 otherwise. Outputs (grids, checkpoints) are written at whole steps."""
        ...

    def epochs_done(self, version: int) -> float:
        """Fractional epochs completed once ``version`` is published."""
        ...

    def to_dict(self) -> dict[str, Any]:
        """The JSON stored in ``runs.plan``."""
        ...

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        """Inverse of :meth:`to_dict` (a ValueError says why a stored plan cannot be read)."""
        ...

    @classmethod
    def from_config(cls, config: Config, dataset: ImageDataset) -> Plan:
        """A new run's plan from the coordinator's (or simulator's) settings and its dataset
        (a ValueError or GanError says which setting to change)."""
        ...

    def describe(self) -> str:
        """One line for the coordinator's log."""
        ...


@dataclass(frozen=True)
class Unit:
    """One piece of work of a version: its run-wide index and, for per-device modes, its device."""

    index: int
    device: int | None = None


@dataclass
class UnitResult:
    """What a worker sends back for one unit.

    ``parameters`` holds one float32 tensor per parameter of G (``g.<name>``) and D
    (``d.<name>``) — a mean gradient or a weight delta, as the rule defines; ``buffers`` the
    BatchNorm buffers each network ended the unit with (``gbuf.*``, ``dbuf.*``). Per-device modes
    also return the device's new local optimizer state (``device_state``, per-parameter tensors
    only: hyper-parameters always come from the run, never from a student). ``wire``, when the
    run compresses its transfers (:mod:`ganfriends.compression`), is what the upload carries
    for ``parameters``, which then hold the values it stands for.
    """

    parameters: dict[str, torch.Tensor]
    buffers: dict[str, torch.Tensor]
    stats: StepStats
    device_state: dict[str, torch.Tensor] | None = field(default=None)
    wire: dict[str, torch.Tensor] | None = field(default=None)

    @property
    def images(self) -> int:
        """Images the unit was computed on."""
        return self.stats.images


@dataclass
class ServerState:
    """The coordinator's side of a run at weights version ``version``: the published networks
    and the optimizers that turn combined results into the next version."""

    generator: nn.Module
    discriminator: nn.Module
    optimizer_g: torch.optim.Optimizer
    optimizer_d: torch.optim.Optimizer
    version: int = 0
    images_seen: int = 0


def result_spec(generator: nn.Module, discriminator: nn.Module) -> TensorSpec:
    """Exactly the tensors an honest unit result holds (both modes ship per-parameter tensors)."""
    return (
        parameter_spec(generator, "g.")
        .merged(parameter_spec(discriminator, "d."))
        .merged(buffer_spec(generator, "gbuf."))
        .merged(buffer_spec(discriminator, "dbuf."))
    )


def network_buffers(generator: nn.Module, discriminator: nn.Module) -> dict[str, torch.Tensor]:
    """Copies of both networks' buffers on the CPU, named as in a result (``gbuf.*``, ``dbuf.*``).

    Copies: on the CPU ``.to("cpu")`` would alias the live buffers, which the next unit's
    weight load overwrites in place (a result kept in memory, as ``simulate`` keeps it, would
    silently change).
    """
    return {
        prefix + name: b.detach().to("cpu", copy=True)
        for prefix, module in (("gbuf.", generator), ("dbuf.", discriminator))
        for name, b in module.named_buffers()
    }


def load_buffers(module: nn.Module, buffers: dict[str, torch.Tensor], prefix: str) -> None:
    """Set ``module``'s buffers from ``prefix``-named tensors (parameters untouched)."""
    module.load_state_dict(
        {n: buffers[prefix + n] for n, _ in module.named_buffers()}, strict=False
    )


def apply_pseudo_gradients(
    state: ServerState, gradients: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor]
) -> None:
    """Hand combined per-parameter tensors to the server optimizers as ``.grad`` and step; then
    set the combined BatchNorm buffers. The one place a combined result becomes a new version.

    A network with no tensors in ``gradients`` (the other half of an alternating step) keeps its
    weights and optimizer state; one with no buffers in ``buffers`` keeps its buffers.
    """
    for prefix, model, optimizer in (
        ("g.", state.generator, state.optimizer_g),
        ("d.", state.discriminator, state.optimizer_d),
    ):
        if not any(name.startswith(prefix) for name in gradients):
            continue
        optimizer.zero_grad(set_to_none=True)
        for name, p in model.named_parameters():
            p.grad = gradients[prefix + name].to(p.dtype)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    for prefix, module in (("gbuf.", state.generator), ("dbuf.", state.discriminator)):
        if any(name.startswith(prefix) for name in buffers):
            load_buffers(module, buffers, prefix)


@dataclass(frozen=True)
class UpdateRecord:
    """One row of a run's history: what the results combined into a version measured.

    ``images`` counts images newly trained (a phase that reuses its step's images adds none);
    a loss or score the version's phase does not measure is NaN.
    """

    images: int
    d_loss: float
    g_loss: float
    d_real: float
    d_fake: float

    @classmethod
    def of(cls, stats: StepStats) -> UpdateRecord:
        """Everything ``stats`` measured."""
        return cls(stats.images, stats.d_loss, stats.g_loss, stats.d_real, stats.d_fake)

    def describe(self) -> str:
        """The measured values, for a log line."""
        parts = [
            ("D", self.d_loss, ".3f"),
            ("G", self.g_loss, ".3f"),
            ("D(x)", self.d_real, ".2f"),
            ("D(G(z))", self.d_fake, ".2f"),
        ]
        return " ".join(f"{label} {value:{fmt}}" for label, value, fmt in parts if value == value)


def step_stats(versions: Sequence[StepStats]) -> StepStats:
    """One optimizer step's statistics from those of its versions (an alternating class step
    has two): every version covers the step's images, each measuring its share of the losses
    (the sums it does not measure are zero)."""
    total = StepStats()
    for stats in versions:
        total.d_loss_sum += stats.d_loss_sum
        total.g_loss_sum += stats.g_loss_sum
        total.d_real_sum += stats.d_real_sum
        total.d_fake_sum += stats.d_fake_sum
        total.images = max(total.images, stats.images)
        total.skipped = max(total.skipped, stats.skipped)
    return total


def total_stats(results: Sequence[UnitResult]) -> StepStats:
    """The summed statistics of a version's results."""
    total = StepStats()
    for r in results:
        total += r.stats
    return total


class Rule(Protocol):
    """A mode's science, behind the loop described in the module docstring. What only some
    rules do is a capability of its own (:mod:`ganfriends.rules.capabilities`)."""

    @property
    def plan(self) -> Plan:
        """The run's schedule."""
        ...

    def units_of(self, version: int) -> list[Unit]:
        """The units computed on weights ``version`` (empty once the run is done)."""
        ...

    def max_images(self, unit: Unit) -> int:
        """The most images an honest result of ``unit`` can claim (its weight in a mean)."""
        ...

    def result_spec(
        self, generator: nn.Module, discriminator: nn.Module, version: int | None = None
    ) -> TensorSpec:
        """Exactly the tensors an honest result of a unit of ``version`` holds (None: the
        largest result any version takes, for upload limits)."""
        ...

    def history(self, version: int, stats: StepStats) -> UpdateRecord:
        """The history row of the update that combines ``version``'s results."""
        ...

    def server_optimizers(
        self, generator: nn.Module, discriminator: nn.Module
    ) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
        """The coordinator's optimizers for G and D, fresh."""
        ...

    def ready(self, done: int, total: int, waited_seconds: float) -> bool:
        """Whether a version with ``done`` of ``total`` units reported may be combined now."""
        ...

    def compute(self, work: Workspace, unit: Unit, start: UnitStart = FRESH) -> UnitResult:
        """A worker's job: ``unit`` on the published weights the workspace's networks hold."""
        ...

    def combine(
        self, state: ServerState, units: Sequence[Unit], results: Sequence[UnitResult]
    ) -> None:
        """Turn a version's results (in unit order) into the next version, in place."""
        ...


P = TypeVar("P")


class RuleBase(Generic[P]):
    """What every rule holds, from the run's settings: its plan, the GAN objective, Adam's
    learning rate and betas, the networks' architecture; and the common defaults."""

    def __init__(
        self,
        plan: P,
        config: Config,
        model_config: ModelConfig,
        dataset: ImageDataset | None = None,  # kept by the rules that read it
    ) -> None:
        training = config.training
        self.plan = plan
        self.model_config = model_config
        self.loss = make_loss(training.loss)
        self.learning_rate = training.learning_rate
        self.betas = (training.beta1, training.beta2)

    def ready(self, done: int, total: int, waited_seconds: float) -> bool:
        """Every unit of the version must be in."""
        return done == total

    def history(self, version: int, stats: StepStats) -> UpdateRecord:
        """Every unit measures every loss."""
        return UpdateRecord.of(stats)

    def server_optimizers(
        self, generator: nn.Module, discriminator: nn.Module
    ) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
        """DCGAN's Adam for G and D, at the coordinator."""
        return make_optimizers(generator, discriminator, self.learning_rate, self.betas)
