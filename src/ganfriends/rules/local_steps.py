"""Local steps and the outer step: what the sync mode's ``--local-steps`` and the federated mode
share.

A unit starts from the published G and D, runs H local alternating steps with its own inner Adam
and returns the change of its weights (and its final BatchNorm buffers). The coordinator takes
the image-weighted (or FeGAN-weighted) mean change and hands ``-change`` to an *outer* optimizer
as a pseudo-gradient (Reddi et al. 2021, "Adaptive Federated Optimization"): SGD with lr 1 and no
momentum is FedAvg; Nesterov with lr 0.7 and momentum 0.9 is DiLoCo's outer step (Douillard et
al. 2023), which collapsed our GAN (../shared/research/local-steps-probe.md). G and D may take
different outer steps: benchmarks/communication.py measured which.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from ganfriends.aggregate import Contribution, merge_buffers, weighted_mean
from ganfriends.federated.local_state import export_local_state, import_local_state
from ganfriends.losses import GanLoss
from ganfriends.rules.base import ServerState, UnitResult, apply_pseudo_gradients, network_buffers
from ganfriends.rules.screening import (
    adam_state_problem,
    adam_step_bound,
    move_problem,
    step_count_problem,
)
from ganfriends.step import MicroBatch, StepStats, make_optimizers, train_step

OUTER_OPTIMIZERS = ("sgd", "nesterov", "adam")
# The settings of local steps and their outer step, which a mode that runs them keeps for a
# resumed run (its Mode's ``settings``).
SETTINGS = (
    "coordinator.local_steps",
    "coordinator.local_state",
    "coordinator.outer_optimizer",
    "coordinator.outer_lr",
    "coordinator.outer_momentum",
    "coordinator.outer_lr_d",
    "coordinator.outer_momentum_d",
)
DILOCO_MOMENTUM = 0.9  # what "nesterov" without a momentum of its own means (stored runs)
OUTER_ADAM_BETAS = (0.9, 0.99)  # FedAdam's (Reddi et al. 2021)


@dataclass(frozen=True)
class OuterStep:
    """One network's outer optimizer: ``sgd`` (heavy-ball ``momentum``, 0 = none), ``nesterov``
    (``momentum``, DiLoCo's 0.9 when None) or ``adam`` (FedAdam's betas); its learning rate."""

    optimizer: str = "sgd"
    lr: float = 1.0
    momentum: float | None = None

    def __post_init__(self) -> None:
        if self.optimizer not in OUTER_OPTIMIZERS:
            raise ValueError(
                f"unknown outer optimizer {self.optimizer!r}: choose one of "
                f"{', '.join(OUTER_OPTIMIZERS)}"
            )
        if not self.lr > 0:
            raise ValueError("the outer learning rate must be positive")
        if self.momentum is not None and not 0 <= self.momentum < 1:
            raise ValueError("the outer momentum must be in [0, 1)")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OuterStep:
        """Inverse of ``asdict`` (a stored plan's; missing keys take the defaults)."""
        momentum = data.get("momentum")
        return cls(
            optimizer=str(data.get("optimizer", "sgd")),
            lr=float(data.get("lr", 1.0)),
            momentum=None if momentum is None else float(momentum),
        )

    def to_dict(self) -> dict[str, Any]:
        """What a plan stores."""
        return asdict(self)

    @property
    def effective_momentum(self) -> float:
        """The momentum the optimizer runs with."""
        if self.momentum is not None:
            return self.momentum
        return DILOCO_MOMENTUM if self.optimizer == "nesterov" else 0.0

    def describe(self) -> str:
        """``sgd lr 1`` or ``nesterov lr 0.7 momentum 0.9``."""
        line = f"{self.optimizer} lr {self.lr:g}"
        momentum = self.effective_momentum
        return f"{line} momentum {momentum:g}" if momentum and self.optimizer != "adam" else line

    def make(self, module: nn.Module) -> torch.optim.Optimizer:
        """The outer optimizer over ``module``'s parameters."""
        if self.optimizer == "adam":
            return torch.optim.Adam(module.parameters(), lr=self.lr, betas=OUTER_ADAM_BETAS)
        momentum = self.effective_momentum
        return torch.optim.SGD(
            module.parameters(),
            lr=self.lr,
            momentum=momentum,
            nesterov=self.optimizer == "nesterov" and momentum > 0,
        )


def outer_optimizers(
    generator: nn.Module, discriminator: nn.Module, outer_g: OuterStep, outer_d: OuterStep
) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
    """G's and D's outer optimizers (the coordinator's ``ServerState`` optimizers)."""
    return outer_g.make(generator), outer_d.make(discriminator)


def parameters_of(generator: nn.Module, discriminator: nn.Module) -> dict[str, torch.Tensor]:
    """Copies of both networks' parameters, named as in a result (``g.*``, ``d.*``)."""
    return {
        prefix + n: p.detach().clone()
        for prefix, m in (("g.", generator), ("d.", discriminator))
        for n, p in m.named_parameters()
    }


def weight_change(
    start: dict[str, torch.Tensor], generator: nn.Module, discriminator: nn.Module
) -> dict[str, torch.Tensor]:
    """Each parameter's change since ``start`` (:func:`parameters_of`), float32 on the CPU."""
    return {
        name: (now - start[name]).to("cpu", torch.float32)
        for name, now in parameters_of(generator, discriminator).items()
    }


class LocalRun:
    """One unit's local steps: where its weights started, and its inner Adams (fresh, or
    loaded from the state its slot or device kept, when the run keeps one)."""

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        learning_rate: float,
        betas: tuple[float, float],
        *,
        keep: bool,
        state: dict[str, torch.Tensor] | None,
    ) -> None:
        self.generator, self.discriminator, self.keep = generator, discriminator, keep
        self.start = parameters_of(generator, discriminator)
        self.optimizer_g, self.optimizer_d = make_optimizers(
            generator, discriminator, learning_rate, betas
        )
        if keep and state is not None:
            import_local_state(self.optimizer_g, state, "g.")
            import_local_state(self.optimizer_d, state, "d.")

    def step(self, loss: GanLoss, batches: Iterable[MicroBatch], rule: str) -> StepStats:
        """One inner step of the shared training step over ``batches``."""
        return train_step(
            self.generator, self.discriminator, loss, batches, rule,
            optimizer_g=self.optimizer_g, optimizer_d=self.optimizer_d,
        )  # fmt: skip

    def result(self, stats: StepStats) -> UnitResult:
        """The weights' change, the final buffers and (kept) the inner state."""
        g, d = self.generator, self.discriminator
        state = export_local_state(self.optimizer_g, self.optimizer_d) if self.keep else None
        return UnitResult(
            weight_change(self.start, g, d), network_buffers(g, d), stats, device_state=state
        )


def change_problem(
    result: UnitResult,
    previous_state: dict[str, torch.Tensor] | None,
    steps: int,
    learning_rate: float,
    betas: tuple[float, float],
) -> str | None:
    """Why ``result`` cannot come from ``steps`` honest inner Adam steps: no coordinate of its
    change beyond ``steps * lr *`` Adam's step bound (absolute, whatever the data: at most ~18
    honest rounds' moves for DCGAN's betas); a carried inner state within Adam's moment
    invariant, its step counts advanced by at most ``steps`` from ``previous_state``."""
    bound = steps * learning_rate * adam_step_bound(betas)
    zero = {name: torch.zeros(()) for name in result.parameters}
    reason = move_problem(result.parameters, zero, bound)
    state = result.device_state
    if reason is not None or state is None:
        return reason
    return adam_state_problem(state, betas) or step_count_problem(state, previous_state, steps)


def apply_mean_change(
    state: ServerState, shares: Sequence[float], results: Sequence[UnitResult]
) -> None:
    """The ``shares``-weighted mean change and buffers, applied as ``-change`` by the outer
    optimizers (a crashed unit never rescales the model: ``shares`` sum to 1 over those in)."""
    change = weighted_mean(
        [Contribution(w, r.parameters) for w, r in zip(shares, results, strict=True)]
    )
    buffers = merge_buffers(
        [Contribution(w, r.buffers) for w, r in zip(shares, results, strict=True)]
    )
    apply_pseudo_gradients(state, {k: -v for k, v in change.items()}, buffers)
