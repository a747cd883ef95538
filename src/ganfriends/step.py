"""The one GAN training step. Every mode (local, worker, federated, DDP) calls it; modes only decide
where the resulting gradients go (an optimizer here, an upload there).

Two update rules, chosen by name:

``alternating``
    The reference DCGAN (pytorch/examples dcgan): D takes its optimizer step first, then G's
    gradient is computed through the *updated* D. Needs both optimizers.
``simultaneous``
    Both gradients come from one set of weights, as when a volunteer computes on one published
    version. With optimizers, both step afterwards; without, the gradients are left in ``.grad``.

Gradients are exact means over all images of the step, however they are split into micro-batches:
each micro-batch contributes ``loss * n`` and the sum is divided by the total at the end. (With
BatchNorm in train mode the micro-batch size still changes the result, because BN normalises over
each micro-batch: that is why it is a run setting in the distributed modes.)

G's loss is back-propagated through D with D's parameters frozen, so it never leaves gradients in D
— the bug that made the seed worker upload dD[d_real + d_fake + g_loss].
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Protocol

import torch
from torch import nn

from ganfriends.losses import GanLoss

UPDATE_RULES = ("alternating", "simultaneous")

# A per-phase reduce hook, ``reduce(network, images) -> images``: it is handed a network whose
# ``.grad`` hold *sums* (n * mean gradient) over this process's ``images`` images, must turn them
# into sums over every process, and returns how many images the new sums cover; the step then
# divides by that count, so the mean is exact even for uneven shares. It runs on D between D's
# backward and D's optimizer step, and on G likewise (stylegan3 training_loop.py:274-293 does the
# same per phase, with no DDP wrapper: pytorch#175024, two BatchNorm-D forwards before one
# backward, cannot bite). ``ganfriends.cluster.ddp.GradientReducer`` is the torchrun one.
GradReduce = Callable[[nn.Module, int], int]

# How a loss reaches a network's ``.grad``: ``backward(network, loss)`` back-propagates ``loss`` (a
# sum over images) into ``network``, the one whose gradient it is. Autograd's when none is given; a
# DeepSpeed run goes through each network's ``engine.backward``
# (:meth:`ganfriends.cluster.deepspeed.DeepSpeedReducer.backward`).
Backward = Callable[[nn.Module, torch.Tensor], None]
LossBackward = Callable[[torch.Tensor], None]  # a Backward bound to one network


class Stepper(Protocol):
    """What takes a network's optimizer step: a torch optimizer, or a DeepSpeed engine."""

    def step(self) -> object:
        """Update the network from the mean gradients in its ``.grad``."""


@dataclass(frozen=True)
class MicroBatch:
    """Real images (n, C, H, W) in [-1, 1] and the noise (n, latent, 1, 1) G turns into n fakes."""

    real: torch.Tensor
    z: torch.Tensor

    def __post_init__(self) -> None:
        if self.real.shape[0] != self.z.shape[0]:
            raise ValueError(
                f"{self.real.shape[0]} real images but {self.z.shape[0]} noise vectors"
            )

    @property
    def size(self) -> int:
        """Number of images."""
        return int(self.real.shape[0])


@dataclass
class StepStats:
    """Losses and D's scores summed over images, so stats of several units merge exactly."""

    images: int = 0
    d_loss_sum: float = 0.0
    g_loss_sum: float = 0.0
    d_real_sum: float = 0.0  # sum of D's "realness" score on real images: D(x)
    d_fake_sum: float = 0.0  # ... on fakes, before D's update: D(G(z))
    skipped: int = 0  # unreadable images left out (counted by the caller that loads batches)

    def __iadd__(self, other: StepStats) -> StepStats:
        self.images += other.images
        self.skipped += other.skipped
        self.d_loss_sum += other.d_loss_sum
        self.g_loss_sum += other.g_loss_sum
        self.d_real_sum += other.d_real_sum
        self.d_fake_sum += other.d_fake_sum
        return self

    def _mean(self, total: float) -> float:
        return total / self.images if self.images else float("nan")

    @property
    def d_loss(self) -> float:
        """Mean D loss per image."""
        return self._mean(self.d_loss_sum)

    @property
    def g_loss(self) -> float:
        """Mean G loss per image."""
        return self._mean(self.g_loss_sum)

    @property
    def d_real(self) -> float:
        """Mean D(x)."""
        return self._mean(self.d_real_sum)

    @property
    def d_fake(self) -> float:
        """Mean D(G(z))."""
        return self._mean(self.d_fake_sum)


@contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """Stop autograd from producing gradients for ``module``'s parameters (restored on exit).

    Inputs still get gradients, so G's loss reaches G through D, and D's weight gradients are not
    even computed, which also saves time.
    """
    flags = [(p, p.requires_grad) for p in module.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def discriminator_backward(
    discriminator: nn.Module,
    loss: GanLoss,
    real: torch.Tensor,
    fake: torch.Tensor,
    backward: LossBackward = torch.autograd.backward,
) -> StepStats:
    """Add n * grad of D's loss on (real, detached fake) to D's ``.grad``; G gets nothing."""
    n = real.shape[0]
    real_out = discriminator(real)
    fake_out = discriminator(fake.detach())
    d_loss = loss.discriminator(real_out, fake_out)
    backward(d_loss * n)
    with torch.no_grad():
        return StepStats(
            images=n,
            d_loss_sum=d_loss.item() * n,
            d_real_sum=loss.score(real_out).sum().item(),
            d_fake_sum=loss.score(fake_out).sum().item(),
        )


def generator_backward(
    discriminator: nn.Module,
    loss: GanLoss,
    fake: torch.Tensor,
    backward: LossBackward = torch.autograd.backward,
) -> float:
    """Add n * grad of G's loss to G's ``.grad`` through a frozen D; returns the summed G loss."""
    n = fake.shape[0]
    with frozen(discriminator):
        g_loss = loss.generator(discriminator(fake))
        backward(g_loss * n)
    return float(g_loss.item()) * n


def discriminator_feedback(
    discriminator: nn.Module, loss: GanLoss, fake: torch.Tensor
) -> tuple[torch.Tensor, float]:
    """MD-GAN's feedback: n * dL_G/dx for each generated image x (D frozen, so D gets nothing).

    ``fake`` is a batch of generated images *without* G's graph (G lives elsewhere); the returned
    tensor has its shape, and back-propagating it through G (``G(z).backward(feedback)``) gives
    exactly the G gradient :func:`generator_backward` leaves, summed like it: n * mean.
    Returns (feedback, summed G loss).
    """
    n = fake.shape[0]
    x = fake.detach().requires_grad_(True)
    with frozen(discriminator):
        g_loss = loss.generator(discriminator(x))
        (feedback,) = torch.autograd.grad(g_loss * n, x)
    return feedback, float(g_loss.item()) * n


def _divide_grads(module: nn.Module, total: int) -> None:
    for p in module.parameters():
        if p.grad is not None:
            p.grad.div_(total)


def _bound(backward: Backward | None, network: nn.Module) -> LossBackward:
    return torch.autograd.backward if backward is None else partial(backward, network)


def _reduced(module: nn.Module, images: int, reduce: GradReduce | None) -> int:
    # Every process calls the hook, even one with no images, so that none waits forever.
    return images if reduce is None else reduce(module, images)


def train_step(
    generator: nn.Module,
    discriminator: nn.Module,
    loss: GanLoss,
    batches: Iterable[MicroBatch],
    rule: str = "alternating",
    *,
    optimizer_g: Stepper | None = None,
    optimizer_d: Stepper | None = None,
    reduce: GradReduce | None = None,
    backward: Backward | None = None,
) -> StepStats:
    """One GAN step over ``batches`` (micro-batches of one logical batch).

    With optimizers, D and G take one step each. Without (``simultaneous`` only), the step leaves
    the mean gradients of G and D in ``.grad`` for the caller to ship elsewhere. ``reduce`` (see
    :data:`GradReduce`) makes the means span every process of a data-parallel job; the returned
    stats stay this process's own. ``backward`` (see :data:`Backward`) replaces autograd's.
    """
    if rule not in UPDATE_RULES:
        raise ValueError(f"unknown update rule {rule!r}: choose one of {', '.join(UPDATE_RULES)}")
    if (optimizer_g is None) != (optimizer_d is None):
        raise ValueError("pass both optimizers or neither")
    if rule == "alternating" and optimizer_d is None:
        raise ValueError(
            "the alternating rule steps D before computing G's gradient: it needs both optimizers"
        )

    stats = StepStats()
    discriminator.zero_grad(set_to_none=True)
    generator.zero_grad(set_to_none=True)
    backward_d, backward_g = _bound(backward, discriminator), _bound(backward, generator)

    if rule == "simultaneous":
        for batch in batches:
            fake = generator(batch.z)
            stats += discriminator_backward(discriminator, loss, batch.real, fake, backward_d)
            stats.g_loss_sum += generator_backward(discriminator, loss, fake, backward_g)
        total_d = _reduced(discriminator, stats.images, reduce)
        total_g = _reduced(generator, stats.images, reduce)
        if total_d == 0:
            return stats
        _divide_grads(discriminator, total_d)
        _divide_grads(generator, total_g)
        if optimizer_d is not None and optimizer_g is not None:
            optimizer_d.step()
            optimizer_g.step()
        return stats

    assert optimizer_d is not None and optimizer_g is not None
    # Keep each micro-batch's fakes (with their graph to G) for G's pass after D's update, like the
    # reference, which reuses `fake` rather than sampling G a second time.
    fakes: list[torch.Tensor] = []
    for batch in batches:
        fake = generator(batch.z)
        fakes.append(fake)
        stats += discriminator_backward(discriminator, loss, batch.real, fake, backward_d)
    total = _reduced(discriminator, stats.images, reduce)
    if total == 0:
        return stats
    _divide_grads(discriminator, total)
    optimizer_d.step()
    for fake in fakes:
        stats.g_loss_sum += generator_backward(discriminator, loss, fake, backward_g)
    _divide_grads(generator, _reduced(generator, stats.images, reduce))
    optimizer_g.step()
    return stats


def discriminator_gradients(
    generator: nn.Module,
    discriminator: nn.Module,
    loss: GanLoss,
    batches: Iterable[MicroBatch],
) -> StepStats:
    """D's half of the ``alternating`` step alone: the mean gradient of D's loss over ``batches``
    left in D's ``.grad`` (a class run's D units). G runs without a graph and gets nothing."""
    stats = StepStats()
    discriminator.zero_grad(set_to_none=True)
    for batch in batches:
        with torch.no_grad():
            fake = generator(batch.z)
        stats += discriminator_backward(discriminator, loss, batch.real, fake)
    if stats.images:
        _divide_grads(discriminator, stats.images)
    return stats


def generator_gradients(
    generator: nn.Module,
    discriminator: nn.Module,
    loss: GanLoss,
    batches: Iterable[MicroBatch],
) -> StepStats:
    """G's half of the ``alternating`` step alone, through the D the networks hold (already
    stepped): the mean gradient of G's loss left in G's ``.grad`` (a class run's G units).

    G is sampled again from the same noise, which gives the reference's fakes exactly (same
    weights, same batches); each micro-batch's graph is freed before the next is built.
    """
    stats = StepStats()
    generator.zero_grad(set_to_none=True)
    for batch in batches:
        stats.images += batch.size
        stats.g_loss_sum += generator_backward(discriminator, loss, generator(batch.z))
    if stats.images:
        _divide_grads(generator, stats.images)
    return stats


def make_optimizers(
    generator: nn.Module, discriminator: nn.Module, lr: float, betas: tuple[float, float]
) -> tuple[torch.optim.Adam, torch.optim.Adam]:
    """Adam for G and for D with DCGAN's settings (the paper uses lr 2e-4, beta1 0.5)."""
    return (
        torch.optim.Adam(generator.parameters(), lr=lr, betas=betas),
        torch.optim.Adam(discriminator.parameters(), lr=lr, betas=betas),
    )
