"""The ``md-gan`` mode: MD-GAN (Hardy, Le Merrer, Sericola, IPDPS 2019, Algorithm 1).

One generator, at the coordinator; one discriminator per device, kept with its Adam state in
the database (so any worker can serve any device). Iteration i (= version i -> i+1):

1. the coordinator draws k noise batches (keyed by (seed, i, j)) and publishes the generated
   batches X_1..X_k — never G;
2. device n's unit takes its discriminator, a real batch X_r of its iid shard, runs L
   discriminator steps on (X_r, X_d) with X_d = X_((n+1) mod k) and returns the feedback
   dL_G/dx on X_g = X_(n mod k) (b images' worth of floats) and its new discriminator;
3. the coordinator back-propagates the mean feedback through G — one vector-Jacobian product
   per batch — and takes G's Adam step: G's gradient of (1/N) sum_n L_G(D_n(X_g(n)));
4. every E local epochs the devices' discriminators are swapped along a seeded permutation.

G's objective is the project's loss's generator objective (non-saturating for ``bce``), not the
paper's saturating log(1 - D(G(z))) — the usual practical choice, stated here. Both halves of
the step are the shared step's (``step.discriminator_backward``, ``step.discriminator_feedback``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ganfriends import rng
from ganfriends.blobs import TensorSpec
from ganfriends.data import ImageDataset
from ganfriends.errors import GanError
from ganfriends.federated import Partition, iid_partition
from ganfriends.federated.local_state import export_moments, import_local_state, moments_spec
from ganfriends.models import build_models
from ganfriends.rules.base import RuleBase, ServerState, Unit, UnitResult
from ganfriends.rules.registry import Fixed, Mode
from ganfriends.rules.screening import (
    adam_state_problem,
    adam_step_bound,
    move_problem,
    step_count_problem,
)
from ganfriends.rules.work import FRESH, Inputs, UnitStart, Workspace
from ganfriends.step import StepStats, discriminator_backward, discriminator_feedback

if TYPE_CHECKING:
    from ganfriends.config import Config

WEIGHTS = "dw."  # a device state's discriminator tensors; its Adam moments are "d.<i>.<key>"


@dataclass(frozen=True)
class MdganPlan:
    """The numbers that fix an MD-GAN run (stored as ``runs.plan``)."""

    dataset_size: int
    seed: int
    devices: int  # N discriminators
    batch_size: int  # b
    k: int  # generated batches per iteration
    disc_steps: int  # L
    swap_epochs: int  # E
    iterations: int  # I generator updates
    epochs: int  # nominal passes over the data

    def __post_init__(self) -> None:
        if min(self.devices, self.batch_size, self.k, self.disc_steps, self.iterations) < 1:
            raise ValueError("devices, batch size, k, discriminator steps and iterations >= 1")
        if self.dataset_size // self.devices < self.batch_size:
            raise ValueError(
                f"{self.devices} devices of {self.dataset_size // self.devices} images cannot "
                f"draw batches of {self.batch_size}: lower --devices or --batch-size"
            )

    @classmethod
    def from_config(cls, config: Config, dataset: ImageDataset) -> MdganPlan:
        """A new run's plan from the coordinator's (or simulator's) settings."""
        fed, md, training = config.federated, config.mdgan, config.training
        if fed.non_iid:
            raise GanError(
                "md-gan splits the data iid, as the paper does: drop --non-iid "
                "(the federated mode has FeGAN's non-iid partition)"
            )
        devices, b = fed.devices, fed.batch_size
        k = md.k or max(1, math.ceil(math.log2(devices)))
        if md.iterations is None:
            epochs = training.epochs
            iterations = max(1, math.ceil(epochs * len(dataset) / (devices * b)))
        else:
            iterations = md.iterations
            epochs = max(1, math.ceil(iterations * devices * b / len(dataset)))
        return cls(
            dataset_size=len(dataset),
            seed=training.seed,
            devices=devices,
            batch_size=b,
            k=k,
            disc_steps=md.disc_steps,
            swap_epochs=md.swap_epochs,
            iterations=iterations,
            epochs=epochs,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MdganPlan:
        """Inverse of :meth:`to_dict` (unknown keys ignored)."""
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    def to_dict(self) -> dict[str, Any]:
        """The JSON stored in ``runs.plan``."""
        return asdict(self)

    @property
    def total_versions(self) -> int:
        """One version per generator update."""
        return self.iterations

    @property
    def images_per_version(self) -> int:
        """Real images the discriminators see per iteration (b per device)."""
        return self.devices * self.batch_size

    @property
    def versions_per_step(self) -> int:
        """Each version is a whole step."""
        return 1

    @property
    def swap_interval(self) -> int:
        """Iterations between swaps: E passes over a device's shard of m images, m*E/b."""
        return max(1, (self.dataset_size // self.devices) * self.swap_epochs // self.batch_size)

    def epochs_done(self, version: int) -> float:
        """Passes over the data the discriminators made after ``version`` iterations."""
        return version * self.images_per_version / self.dataset_size

    def describe(self) -> str:
        """One line for the coordinator's log."""
        return (
            f"{self.devices} discriminators, k={self.k} generated batches of b={self.batch_size}, "
            f"L={self.disc_steps} D steps, swaps every {self.swap_interval} iterations, "
            f"{self.iterations} iterations"
        )


class MdganRule(RuleBase[MdganPlan]):
    """MD-GAN: generated batches out, per-image feedback back, G's step at the coordinator.

    Its workers compute on published inputs (the generated batches), and every device keeps its
    discriminator, swapped between devices every E epochs. The server optimizers are the
    default Adam pair: G's, and (for checkpoints) that of the discriminator mirrored from
    device 0."""

    # ------------------------------------------------------------------ schedule

    @cached_property
    def partition(self) -> Partition:
        """Device n's iid shard (the paper splits the data in equal shares)."""
        return iid_partition(self.plan.dataset_size, self.plan.devices - 1, self.plan.seed)

    def units_of(self, version: int) -> list[Unit]:
        """Every device, every iteration; unit index = iteration * N + device."""
        if version >= self.plan.iterations:
            return []
        n = self.plan.devices
        return [Unit(version * n + d, d) for d in range(n)]

    def max_images(self, unit: Unit) -> int:
        """b generated images get feedback."""
        return self.plan.batch_size

    def generated_batch(self, device: int) -> int:
        """Index j of X_g for ``device`` (its X_d is the next one)."""
        return device % self.plan.k

    def inputs_needed(self, unit: Unit) -> tuple[str, ...]:
        """X_g and X_d of the unit's device: 2 b images, the paper's download."""
        assert unit.device is not None
        j = self.generated_batch(unit.device)
        return (f"x.{j}", f"x.{(j + 1) % self.plan.k}")

    def device_moves(self, version: int) -> list[int] | None:
        """The swap due when publishing ``version``: device n's discriminator goes to moves[n]."""
        if version == 0 or version % self.plan.swap_interval != 0:
            return None
        return [int(i) for i in rng.permutation(self.plan.devices, self.plan.seed, rng.MD_SWAP,
                                                version)]  # fmt: skip

    # ------------------------------------------------------------------ specs

    def _image_shape(self) -> tuple[int, ...]:
        c, s = self.model_config.channels, self.model_config.image_size
        return (self.plan.batch_size, c, s, s)

    def result_spec(
        self, generator: nn.Module, discriminator: nn.Module, version: int | None = None
    ) -> TensorSpec:
        """b feedback images."""
        return TensorSpec({"feedback": self._image_shape()}, {"feedback": torch.float32})

    def inputs_spec(self, generator: nn.Module, discriminator: nn.Module) -> TensorSpec:
        """k generated batches."""
        names = [f"x.{j}" for j in range(self.plan.k)]
        return TensorSpec(dict.fromkeys(names, self._image_shape()),
                          dict.fromkeys(names, torch.float32))  # fmt: skip

    def device_state_spec(
        self, generator: nn.Module, discriminator: nn.Module
    ) -> TensorSpec | None:
        """A device's discriminator (parameters and buffers) and its Adam moments."""
        shapes: dict[str, tuple[int, ...]] = {}
        dtypes: dict[str, torch.dtype] = {}
        for name, tensor in discriminator.state_dict().items():
            shapes[WEIGHTS + name], dtypes[WEIGHTS + name] = tuple(tensor.shape), tensor.dtype
        return TensorSpec(shapes, dtypes).merged(moments_spec(discriminator, "d."))

    def check_result(
        self, unit: Unit, result: UnitResult, previous_state: dict[str, torch.Tensor] | None
    ) -> str | None:
        """Exact bounds of the unit's L discriminator steps from the state it started from
        (``previous_state``, or the run's initial D for a fresh device): every D weight within
        L * lr * the Adam step bound of its start, Adam's moment invariant, step counts
        advanced by L. A state swapped in from another device fails the move bound once the
        two devices' discriminators differ by more than one unit's move; before that (early
        in a run) it is within one honest unit's move of the right one, and bounded so."""
        state = result.device_state
        if state is None:
            return "an md-gan result carries its device's discriminator"
        start = (
            {WEIGHTS + k: v for k, v in self.initial_discriminator.items()}
            if previous_state is None
            else previous_state
        )
        moved = {WEIGHTS + n: state[WEIGHTS + n] for n in self._parameter_names}
        bound = self.plan.disc_steps * self.learning_rate * adam_step_bound(self.betas)
        return (
            move_problem(moved, start, bound)
            or adam_state_problem(state, self.betas)
            or step_count_problem(state, previous_state, self.plan.disc_steps, "d.")
        )

    @cached_property
    def _parameter_names(self) -> list[str]:
        """The discriminator's parameter names (its state also holds BatchNorm buffers)."""
        _, discriminator = build_models(self.model_config)
        return [name for name, _ in discriminator.named_parameters()]

    # ------------------------------------------------------------------ server side

    def _noise(self, version: int, j: int) -> torch.Tensor:
        return rng.latent_noise(
            self.plan.batch_size, self.model_config.latent_dim, self.plan.seed, rng.MD_NOISE,
            version, j,
        )  # fmt: skip

    def inputs_of(self, state: ServerState, version: int) -> Inputs | None:
        """The k generated batches of iteration ``version`` (G in train mode, like a step's)."""
        if version >= self.plan.iterations:
            return None
        generator = state.generator
        generator.train()
        with torch.no_grad():
            return {f"x.{j}": generator(self._noise(version, j)) for j in range(self.plan.k)}

    def combine(
        self, state: ServerState, units: Sequence[Unit], results: Sequence[UnitResult]
    ) -> None:
        """Back-propagate the devices' mean feedback through G and take G's Adam step."""
        plan, generator = self.plan, state.generator
        outputs: list[torch.Tensor] = [torch.zeros(self._image_shape(), dtype=torch.float64)
                                       for _ in range(plan.k)]  # fmt: skip
        for unit, result in zip(units, results, strict=True):
            assert unit.device is not None
            outputs[self.generated_batch(unit.device)] += result.parameters["feedback"].double()
        # Each feedback is b * dL_n/dx; G's objective is the mean over the N devices' mean losses.
        scale = 1.0 / (plan.devices * plan.batch_size)
        # Publishing the version already ran these forwards (and moved BN's running statistics
        # once): recompute them for the graph, then put the statistics back.
        buffers = {n: b.detach().clone() for n, b in generator.named_buffers()}
        generator.train()
        state.optimizer_g.zero_grad(set_to_none=True)
        fakes = [generator(self._noise(state.version, j)) for j in range(plan.k)]
        torch.autograd.backward(fakes, [(g * scale).to(torch.float32) for g in outputs])
        generator.load_state_dict(buffers, strict=False)
        state.optimizer_g.step()
        state.optimizer_g.zero_grad(set_to_none=True)
        for unit, result in zip(units, results, strict=True):
            if unit.device == 0 and result.device_state is not None:
                self._load_device(state.discriminator, state.optimizer_d, result.device_state)

    # ------------------------------------------------------------------ worker side

    @cached_property
    def initial_discriminator(self) -> dict[str, torch.Tensor]:
        """Every device's discriminator before its first unit: the run's seeded initial D."""
        _, discriminator = build_models(
            self.model_config, seed=rng.derive_seed(self.plan.seed, rng.INIT)
        )
        return {k: v.detach().clone() for k, v in discriminator.state_dict().items()}

    def _load_device(
        self,
        discriminator: nn.Module,
        optimizer: torch.optim.Optimizer,
        device_state: dict[str, torch.Tensor],
    ) -> None:
        discriminator.load_state_dict(
            {k[len(WEIGHTS) :]: v for k, v in device_state.items() if k.startswith(WEIGHTS)}
        )
        import_local_state(optimizer, device_state, "d.")

    def real_batch(self, version: int, device: int) -> list[int]:
        """Device n's b real images of iteration ``version``: seeded passes over its shard."""
        shard = self.partition.shards[device]
        b, n = self.plan.batch_size, len(shard)
        start = version * b
        first, last = start // n, (start + b - 1) // n
        order = torch.cat(
            [rng.permutation(n, self.plan.seed, rng.MD_DATA_ORDER, device, p)
             for p in range(first, last + 1)]
        )  # fmt: skip
        offset = start - first * n
        picked: list[int] = shard[order[offset : offset + b].numpy()].tolist()
        return picked

    def compute(self, work: Workspace, unit: Unit, start: UnitStart = FRESH) -> UnitResult:
        """L steps of device n's discriminator, then its feedback on X_g."""
        inputs, device, discriminator = start.inputs, work.device, work.discriminator
        if inputs is None or unit.device is None:
            raise GanError("an md-gan unit needs its version's generated batches and a device")
        plan = self.plan
        version, d = divmod(unit.index, plan.devices)
        if d != unit.device:
            raise GanError(f"unit {unit.index} is not device {unit.device}'s")
        discriminator.train()
        optimizer = torch.optim.Adam(
            discriminator.parameters(), lr=self.learning_rate, betas=self.betas
        )
        if start.device_state is None:
            discriminator.load_state_dict(self.initial_discriminator)
        else:
            self._load_device(discriminator, optimizer, start.device_state)
        j = self.generated_batch(d)
        x_g = inputs[f"x.{j}"].to(device)
        x_d = inputs[f"x.{(j + 1) % plan.k}"].to(device)
        real, skipped = work.dataset.get_batch(self.real_batch(version, d))
        if skipped:
            raise GanError(f"device {d}'s batch of iteration {version} has unreadable images")
        real = real.to(device)
        with rng.seeded_global_rng(device, plan.seed, rng.DROPOUT, version, d):
            for _ in range(plan.disc_steps):
                discriminator.zero_grad(set_to_none=True)
                stats = discriminator_backward(discriminator, self.loss, real, x_d)
                for p in discriminator.parameters():  # the step's exact mean: n * grad / n
                    if p.grad is not None:
                        p.grad.div_(stats.images)
                optimizer.step()
            feedback, g_loss_sum = discriminator_feedback(discriminator, self.loss, x_g)
        # D's statistics are those of its last step; G's loss is the feedback's.
        out = StepStats(
            images=plan.batch_size,
            d_loss_sum=stats.d_loss_sum,
            g_loss_sum=g_loss_sum,
            d_real_sum=stats.d_real_sum,
            d_fake_sum=stats.d_fake_sum,
        )
        new_state = {WEIGHTS + k: v.detach().to("cpu", copy=True)
                     for k, v in discriminator.state_dict().items()}  # fmt: skip
        new_state |= export_moments(optimizer, "d.")
        return UnitResult(
            {"feedback": feedback.detach().to("cpu", torch.float32, copy=True)},
            {},
            out,
            device_state=new_state,
        )


MODE = Mode(
    name="md-gan",
    description="one generator at the coordinator, a discriminator per device",
    plan=MdganPlan,
    rule=MdganRule,
    settings=("federated.devices", "federated.batch_size", "federated.non_iid", "mdgan"),
    fixed=(
        Fixed("coordinator.transfer_dtype", "float32", "uploads float32"),
        Fixed("coordinator.download_dtype", "float32", "downloads float32"),
    ),
)
