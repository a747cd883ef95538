"""train-local under torchrun: one trainer whose processes each compute a share of every batch.

The trainer detects torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``) and joins its
process group, as nanoGPT's train.py:82-100 does; without torchrun it is a world of one and every
collective here is skipped. There is no ``DistributedDataParallel`` wrapper. Instead:

- **Gradients** go through :class:`GradientReducer`, the per-phase hook of
  :func:`ganfriends.step.train_step` (stylegan3 training_loop.py:274-293): between a network's
  backward and its optimizer step, the *summed* gradients (n * mean) and the image counts are
  all-reduced, and the step divides by the global count. The mean is exact whatever the shares,
  and G's loss through a frozen BatchNorm D with two D forwards per step (pytorch#175024 breaks
  that under DDP) needs no special setting.
- **BatchNorm running statistics** are not gradients: each process moves them with its own share
  only. At each hook they are replaced by what one process running all the shares' forwards one
  after another, in rank order, would hold (:func:`ganfriends.aggregate.chain_running_stats`,
  which a class run's sync rule uses too). So every process keeps identical weights *and*
  buffers, and N processes equal one process whose micro-batches are the N shares, buffers
  included.
- **Data and noise**: rank r takes slice r of every global batch and of its noise
  (:meth:`Cluster.share`), both drawn from (seed, epoch, step) as in one process.

That is ``--strategy ddp`` (``auto`` under torchrun; its hook in :mod:`ganfriends.cluster.ddp`):
data-parallel with torch.distributed's own collectives. ``--strategy deepspeed``
(:mod:`ganfriends.cluster.deepspeed`) keeps the same step, shares and BatchNorm chaining, but
back-propagates, all-reduces and steps through one DeepSpeed engine per network.
:meth:`Cluster.step_hooks` hands train_step the chosen strategy's hooks.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import nn

from ganfriends.children import die_with_parent
from ganfriends.cluster.ddp import GradientReducer
from ganfriends.cluster.deepspeed import DeepSpeedReducer, import_deepspeed
from ganfriends.device import resolve_device
from ganfriends.errors import ConfigError
from ganfriends.step import Backward, Stepper, StepStats

BACKENDS = ("auto", "gloo", "nccl")
STRATEGIES = ("auto", "ddp", "deepspeed")


def torchrun_place(env: Mapping[str, str]) -> tuple[int, int, int] | None:
    """(rank, world size, local rank) from torchrun's variables, or None outside torchrun."""
    if "RANK" not in env or "WORLD_SIZE" not in env:
        return None
    try:
        rank, world_size = int(env["RANK"]), int(env["WORLD_SIZE"])
        local_rank = int(env.get("LOCAL_RANK", env["RANK"]))
    except ValueError as exc:
        raise ConfigError(
            f"RANK/WORLD_SIZE/LOCAL_RANK must be whole numbers ({exc}): launch with torchrun"
        ) from exc
    if not 0 <= rank < world_size:
        raise ConfigError(f"RANK {rank} is outside WORLD_SIZE {world_size}: launch with torchrun")
    return rank, world_size, local_rank


@dataclass
class Cluster:
    """This process's place in a torchrun job; a world of one (no process group) without it."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    backend: str | None = None  # None: no process group
    strategy: str = "ddp"  # ddp or deepspeed (see the module docstring)

    @property
    def distributed(self) -> bool:
        """True when this process belongs to a torch.distributed process group."""
        return self.backend is not None

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that prints and writes files."""
        return self.rank == 0

    @property
    def rng_key(self) -> tuple[int, ...]:
        """Extra key for this process's dropout stream; empty on rank 0, as in one process."""
        return (self.rank,) if self.rank else ()

    def describe(self) -> str:
        """'' alone, else e.g. ' | 2 processes (gloo)' for the start line."""
        if not self.distributed:
            return ""
        engines = " through DeepSpeed engines" if self.strategy == "deepspeed" else ""
        return f" | {self.world_size} processes ({self.backend}){engines}"

    def share(self, batch_size: int) -> slice:
        """The images of a global batch this process computes: [r*B/N, (r+1)*B/N)."""
        if batch_size % self.world_size:
            raise ConfigError(
                f"--batch-size {batch_size} (the global batch) does not split evenly over the "
                f"{self.world_size} processes of this job: choose a multiple of {self.world_size}"
            )
        size = batch_size // self.world_size
        return slice(self.rank * size, (self.rank + 1) * size)

    def reducer(self, *networks: nn.Module) -> GradientReducer | None:
        """The reduce hook for these networks, or None in a world of one (nothing to reduce)."""
        return GradientReducer(self, networks) if self.distributed else None

    def step_hooks(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        optimizer_g: torch.optim.Optimizer,
        optimizer_d: torch.optim.Optimizer,
        *,
        micro_batch: int,
        share: int,
    ) -> StepHooks:
        """What train_step runs with in this job under its strategy; build it once the networks
        and optimizers hold their starting (or resumed) state, the same in every process."""
        if self.strategy != "deepspeed":
            return StepHooks(optimizer_g, optimizer_d, self.reducer(generator, discriminator))
        reducer = DeepSpeedReducer(
            self, [(generator, optimizer_g), (discriminator, optimizer_d)], micro_batch, share
        )
        engine_g, engine_d = reducer.engines
        return StepHooks(engine_g, engine_d, reducer, reducer.backward)

    def merge(self, stats: StepStats, stop: bool) -> tuple[StepStats, bool]:
        """The step's stats summed over every process, and whether any process must stop.

        A stop (Ctrl+C) seen by one process stops all of them after the same step, so none waits
        forever in a collective the others left.
        """
        if not self.distributed:
            return stats, stop
        sums = torch.tensor(
            [
                stats.images,
                stats.d_loss_sum,
                stats.g_loss_sum,
                stats.d_real_sum,
                stats.d_fake_sum,
                float(stop),
            ],
            dtype=torch.float64,
            device=self.device,
        )
        dist.all_reduce(sums)
        images, d_loss, g_loss, d_real, d_fake, stops = sums.tolist()
        return StepStats(int(images), d_loss, g_loss, d_real, d_fake), stops > 0


@dataclass
class StepHooks:
    """The keyword arguments of :func:`ganfriends.step.train_step` for one strategy: who takes
    each network's optimizer step, who sums gradients over the processes, who back-propagates."""

    optimizer_g: Stepper
    optimizer_d: Stepper
    reduce: GradientReducer | None = None  # None in a world of one
    backward: Backward | None = None  # None: autograd's

    def begin_step(self) -> None:
        """Call before each step (the reducer remembers the BatchNorm statistics it starts from)."""
        if self.reduce is not None:
            self.reduce.begin_step()


@contextmanager
def joined(
    device_name: str = "auto",
    backend: str = "auto",
    env: Mapping[str, str] | None = None,
    strategy: str = "auto",
) -> Iterator[Cluster]:
    """This process's :class:`Cluster`: under torchrun, a member of its process group (left on
    exit), computing on ``cuda:LOCAL_RANK`` or the CPU; otherwise a world of one on the device.

    ``strategy`` (``--strategy``) is checked before the group is joined: deepspeed needs torchrun
    and the deepspeed package.
    """
    if strategy not in STRATEGIES:
        raise ConfigError(f"unknown --strategy {strategy!r}: choose {', '.join(STRATEGIES)}")
    place = torchrun_place(os.environ if env is None else env)
    device = resolve_device(device_name)
    if place is None:
        if strategy == "deepspeed":
            raise ConfigError(
                "--strategy deepspeed trains the processes of a torchrun job: launch with "
                "torchrun --nproc-per-node N -m ganfriends train-local ..."
            )
        yield Cluster(device=device)
        return
    rank, world_size, local_rank = place
    # torchrun stops its ranks on SIGINT/SIGTERM/SIGHUP; if it is SIGKILLed, they follow it.
    die_with_parent()
    if not dist.is_available():
        raise ConfigError("this torch build has no torch.distributed: run without torchrun")
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"torchrun training runs on cpu or cuda, not {device.type}: set --device")
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise ConfigError(
                f"LOCAL_RANK {local_rank} but {torch.cuda.device_count()} GPUs on this node: "
                "lower torchrun's --nproc-per-node"
            )
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if backend not in BACKENDS:
        raise ConfigError(f"unknown --dist-backend {backend!r}: choose {', '.join(BACKENDS)}")
    chosen = ("nccl" if device.type == "cuda" else "gloo") if backend == "auto" else backend
    if chosen == "nccl" and device.type != "cuda":
        raise ConfigError("--dist-backend nccl needs CUDA GPUs: use gloo (or auto) on CPUs")
    strategy = "ddp" if strategy == "auto" else strategy
    if strategy == "deepspeed":
        import_deepspeed(device)  # a missing package is one error before any process waits
    dist.init_process_group(backend=chosen)
    try:
        yield Cluster(rank, world_size, local_rank, device, chosen, strategy)
        # Leave together: a rank that tears gloo down while rank 0 still writes its checkpoint
        # and samples can abort in gloo's C++ teardown ("terminate called without an active
        # exception", seen under CPU load). On an error we skip the barrier: peers may be gone.
        dist.barrier()
    finally:
        dist.destroy_process_group()
