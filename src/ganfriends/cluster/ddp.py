"""``--strategy ddp``'s reduce hook: gradients summed and BatchNorm statistics chained by hand.

:class:`GradientReducer` is the hook :func:`ganfriends.step.train_step` calls between a network's
backward and its optimizer step, with torch.distributed's own collectives (see
:mod:`ganfriends.cluster.distributed` for why there is no DistributedDataParallel wrapper).
``--strategy deepspeed``'s reducer (:mod:`ganfriends.cluster.deepspeed`) subclasses it: it keeps the
BatchNorm chaining and replaces the gradient sum by its engines' all-reduce.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ganfriends.aggregate import chain_running_stats
from ganfriends.errors import ConfigError


class Place(Protocol):
    """What a reducer reads of its process's place in the job (a ``distributed.Cluster``)."""

    @property
    def world_size(self) -> int:
        """The number of processes in the job."""
        ...

    @property
    def device(self) -> torch.device:
        """The device this process computes on (where the collectives' tensors live)."""
        ...


def batchnorm_layers(network: nn.Module) -> list[_BatchNorm]:
    """The BatchNorm layers of ``network`` that keep running statistics."""
    layers = [m for m in network.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
    for layer in layers:
        if layer.momentum is None:
            # A cumulative average (momentum=None) is not one affine map per forward.
            raise ConfigError("BatchNorm with momentum=None cannot be trained under torchrun")
    return layers


class GradientReducer:
    """The torchrun reduce hook of :func:`ganfriends.step.train_step` (``step.GradReduce``).

    Called on a network, it sums that network's gradients and image counts over every process.
    It also brings the BatchNorm running statistics of that network, and of those hooked before
    it in this step, to their chained value (see the module docstring): D's statistics move again
    in G's phase of the alternating rule, so they are chained at D's hook (a phase boundary) and
    again at G's. A network is never touched before its own hook, while autograd may still hold
    its graph (an in-place change there fails G's backward). Call :meth:`begin_step` first.
    """

    def __init__(self, cluster: Place, networks: Sequence[nn.Module]) -> None:
        self.cluster = cluster
        self._networks = list(networks)
        self._layers = [
            (i, layer) for i, net in enumerate(networks) for layer in batchnorm_layers(net)
        ]
        self._start: list[tuple[torch.Tensor, torch.Tensor, int]] = []
        self._hooked: set[int] = set()
        self.begin_step()

    def begin_step(self) -> None:
        """Remember the running statistics every process starts this step from."""
        self._start = [_running_state(layer) for _, layer in self._layers]
        self._hooked = set()

    def __call__(self, network: nn.Module, images: int) -> int:
        """Sum ``network``'s gradients (n * mean each) over all processes; returns all images."""
        owner = next((i for i, net in enumerate(self._networks) if net is network), None)
        if owner is None:
            raise ValueError("this reducer was built for other networks")
        self._hooked.add(owner)
        self._sum_gradients(network)
        count = torch.tensor([images], dtype=torch.int64, device=self.cluster.device)
        dist.all_reduce(count)
        self._sync_running_stats()
        return int(count.item())

    def _sum_gradients(self, network: nn.Module) -> None:
        """Replace ``network``'s gradients (sums over this process's images) by their sum over
        every process."""
        params = list(network.parameters())
        # One flat all-reduce rather than one per tensor (stylegan3 flattens likewise).
        flat = torch.cat(
            [(p.grad if p.grad is not None else torch.zeros_like(p)).flatten() for p in params]
        )
        dist.all_reduce(flat)
        offset = 0
        for p in params:
            summed = flat[offset : offset + p.numel()].view_as(p)
            offset += p.numel()
            if p.grad is None:
                p.grad = summed.clone()
            else:
                p.grad.copy_(summed)

    def _sync_running_stats(self) -> None:
        """Chain the hooked networks' statistics over the processes, in rank order."""
        chosen = [
            (j, layer) for j, (owner, layer) in enumerate(self._layers) if owner in self._hooked
        ]
        if not chosen:
            return
        world = self.cluster.world_size
        local = torch.cat(
            [torch.cat([_buffer(layer, "mean"), _buffer(layer, "var")]) for _, layer in chosen]
        )
        counts = torch.tensor(
            [_tracked(layer) for _, layer in chosen], dtype=torch.int64, device=local.device
        )
        values = [torch.empty_like(local) for _ in range(world)]
        tracked = [torch.empty_like(counts) for _ in range(world)]
        dist.all_gather(values, local)
        dist.all_gather(tracked, counts)
        offset = 0
        for k, (j, layer) in enumerate(chosen):
            mean0, var0, tracked0 = self._start[j]
            size = mean0.numel()
            forwards = {int(t[k]) - tracked0 for t in tracked}
            if len(forwards) != 1:
                raise RuntimeError(f"processes ran different BatchNorm forward counts: {forwards}")
            steps = forwards.pop()
            if steps:
                decays = [(1.0 - float(layer.momentum or 0.0)) ** steps] * world
                means = [v[offset : offset + size] for v in values]
                variances = [v[offset + size : offset + 2 * size] for v in values]
                with torch.no_grad():
                    _buffer(layer, "mean").copy_(chain_running_stats(mean0, means, decays))
                    _buffer(layer, "var").copy_(chain_running_stats(var0, variances, decays))
                    layer.num_batches_tracked.fill_(tracked0 + world * steps)  # type: ignore[union-attr]
            offset += 2 * size
            self._start[j] = _running_state(layer)


def _buffer(layer: _BatchNorm, which: str) -> torch.Tensor:
    buffer = layer.running_mean if which == "mean" else layer.running_var
    assert buffer is not None  # batchnorm_layers keeps layers that track running stats
    return buffer


def _tracked(layer: _BatchNorm) -> int:
    assert layer.num_batches_tracked is not None
    return int(layer.num_batches_tracked)


def _running_state(layer: _BatchNorm) -> tuple[torch.Tensor, torch.Tensor, int]:
    return (
        _buffer(layer, "mean").detach().clone(),
        _buffer(layer, "var").detach().clone(),
        _tracked(layer),
    )
