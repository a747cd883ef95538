"""``train-local --strategy deepspeed``: G and D each take their step through a DeepSpeed engine.

The same trainer and the same :func:`ganfriends.step.train_step` as ``--strategy ddp``; only the
hooks differ (:class:`DeepSpeedReducer`):

- each network is wrapped by ``deepspeed.initialize`` around the torch Adam the trainer built, so
  the engine steps exactly the optimizer a checkpoint saves (checked: ZeRO stage 0 leaves the
  client optimizer unwrapped);
- every micro-batch's loss goes through ``engine.backward``, with the engine's accumulation
  boundary off: gradients only accumulate in this process;
- at the end of a network's phase (train_step's reduce hook) the boundary is turned on and the
  engine all-reduces the gradients itself (``engine.allreduce_gradients``, what its boundary
  backward runs). Taking the boundary there rather than at a last micro-batch keeps one
  collective per phase even for a process whose share lost images to unreadable files;
- the optimizer step is ``engine.step()`` (train_step calls it where it calls an optimizer's).

Why ZeRO stage 0 and fp32: stages 1-3 partition the Adam state and gradients over the processes
and replace our Adam by DeepSpeed's own wrapper, so a checkpoint would need gathering and its
update would no longer be one process's arithmetic; fp16/bf16 add loss scaling and rounding. With
DCGAN-sized networks (a few MB) partitioning saves nothing, and fp32 keeps the property the tests
check: N processes end with the model one process gets from the same micro-batches.

The engines are never called forward: G and D run as the plain modules (``engine.module`` is the
same object). An engine's forward hooks its outputs so that a later ``tensor.backward`` runs the
engine's backward prologue; G's loss passes through D's outputs, and D's engine would then take
part in G's backward (and refuse it: stage 0 allows only ``engine.backward``). DeepSpeed does not
synchronise BatchNorm buffers either; :class:`~ganfriends.cluster.ddp.GradientReducer`'s
chaining, inherited here, does.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Sequence
from contextlib import redirect_stdout
from types import ModuleType
from typing import Any

import torch
from torch import nn

from ganfriends.cluster.ddp import GradientReducer, Place
from ganfriends.errors import ConfigError

INSTALL_HINT = "pip install 'ganfriends[deepspeed]'"


def import_deepspeed(device: torch.device) -> ModuleType:
    """DeepSpeed, quiet and set to ``device``'s accelerator; a one-line error when absent."""
    # DeepSpeed guesses its accelerator at import (CUDA when a GPU is visible): name it, so
    # --device cpu on a GPU machine stays on the CPU and the guess's warning is not printed.
    os.environ.setdefault("DS_ACCELERATOR", "cuda" if device.type == "cuda" else "cpu")
    try:
        import deepspeed
    except ImportError as exc:
        raise ConfigError(
            f"--strategy deepspeed needs the deepspeed package: {INSTALL_HINT}"
        ) from exc
    # Its INFO lines (the whole config, per-step timings) would drown the progress display.
    logging.getLogger("DeepSpeed").setLevel(logging.WARNING)
    module: ModuleType = deepspeed
    return module


def engine_config(micro_batch: int, share: int) -> dict[str, Any]:
    """The DeepSpeed config of each engine: this process computes ``share`` images per step in
    micro-batches of ``micro_batch``; ZeRO stage 0, fp32 (see the module docstring)."""
    return {
        "train_micro_batch_size_per_gpu": micro_batch,
        "gradient_accumulation_steps": -(-share // micro_batch),
        "zero_optimization": {"stage": 0},
        "fp16": {"enabled": False},
        "bf16": {"enabled": False},
        "gradient_clipping": 0.0,
        "steps_per_print": 2**31 - 1,  # our progress display reports steps
    }


class DeepSpeedReducer(GradientReducer):
    """The reduce hook of ``--strategy deepspeed``, with its :data:`ganfriends.step.Backward`.

    ``engines`` are (G's, D's) in the order of ``networks``; pass them to train_step as the
    optimizers, :meth:`backward` as its backward and this object as its reduce hook.
    """

    def __init__(
        self,
        cluster: Place,
        networks: Sequence[tuple[nn.Module, torch.optim.Optimizer]],
        micro_batch: int,
        share: int,
    ) -> None:
        super().__init__(cluster, [network for network, _ in networks])
        deepspeed = import_deepspeed(cluster.device)
        config = engine_config(micro_batch, share)
        self.engines: list[Any] = []
        for network, optimizer in networks:
            # Every rank would print that DeepSpeed's CPU shared-memory op was built (a print,
            # not its logger): the start line is rank 0's alone.
            with redirect_stdout(io.StringIO()):
                engine, stepped, _, _ = deepspeed.initialize(
                    model=network, optimizer=optimizer, config=config
                )
            if engine.module is not network or stepped is not optimizer:
                # The checkpoint saves `network` and `optimizer`: they must be what is trained.
                raise RuntimeError(
                    f"DeepSpeed {deepspeed.__version__} wrapped the model or the optimizer "
                    "at ZeRO stage 0: checkpoints would not hold the trained state"
                )
            self.engines.append(engine)

    def engine(self, network: nn.Module) -> Any:
        """The DeepSpeed engine of ``network``."""
        for engine in self.engines:
            if engine.module is network:
                return engine
        raise ValueError("this reducer was built for other networks")

    def backward(self, network: nn.Module, loss: torch.Tensor) -> None:
        """``engine.backward`` of ``network``'s engine: accumulate in this process only.

        ``loss`` is a sum over images (``n * mean``, train_step's convention). DeepSpeed's
        all-reduce *averages* over the N processes, so the loss is taken N times here: the average
        of N local sums is their sum, the sum over the global batch, which train_step divides by
        the global image count (the reduce hook's return) into the global-batch mean. The engine's
        own 1/gradient_accumulation_steps scaling assumes equal micro-batch means; sums need none.
        """
        engine = self.engine(network)
        engine.set_gradient_accumulation_boundary(False)
        engine.backward(loss * self.cluster.world_size, scale_wrt_gas=False)

    def _sum_gradients(self, network: nn.Module) -> None:
        """The engine's own all-reduce, at the boundary that the following ``engine.step()``
        (train_step's optimizer step) also sees, so that it updates the network."""
        engine = self.engine(network)
        engine.set_gradient_accumulation_boundary(True)
        engine.allreduce_gradients()
