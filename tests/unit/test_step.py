from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from ganfriends.losses import NonSaturatingBCE
from ganfriends.models import ModelConfig, build_models
from ganfriends.step import MicroBatch, discriminator_backward, make_optimizers, train_step
from tests.tensors import grad_of

CONFIG = ModelConfig(image_size=32, channels=1, latent_dim=8, g_features=4, d_features=4)
LOSS = NonSaturatingBCE()


def make_pair(eval_mode: bool = False) -> tuple[nn.Module, nn.Module]:
    generator, discriminator = build_models(CONFIG, seed=0)
    if eval_mode:
        # BatchNorm in eval mode uses running stats: no coupling between the images of a batch.
        generator.eval()
        discriminator.eval()
    return generator, discriminator


def make_batch(n: int, seed: int) -> MicroBatch:
    gen = torch.Generator().manual_seed(seed)
    real = torch.rand(n, 1, 32, 32, generator=gen) * 2 - 1
    return MicroBatch(real, torch.randn(n, CONFIG.latent_dim, 1, 1, generator=gen))


def split(batch: MicroBatch, parts: int) -> list[MicroBatch]:
    pairs = zip(batch.real.chunk(parts), batch.z.chunk(parts), strict=True)
    return [MicroBatch(r, z) for r, z in pairs]


def grads(module: nn.Module) -> list[torch.Tensor]:
    return [grad_of(p).clone() for p in module.parameters()]


def assert_all_close(a: list[torch.Tensor], b: list[torch.Tensor], atol: float = 1e-5) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x, y, atol=atol, rtol=1e-4)


def test_accumulated_gradients_over_micro_batches_equal_one_big_batch() -> None:
    batch = make_batch(24, seed=1)
    g1, d1 = make_pair(eval_mode=True)
    train_step(g1, d1, LOSS, [batch], "simultaneous")
    g2, d2 = make_pair(eval_mode=True)
    train_step(g2, d2, LOSS, split(batch, 4), "simultaneous")
    assert_all_close(grads(d1), grads(d2))
    assert_all_close(grads(g1), grads(g2))


def test_accumulation_is_exact_for_unequal_micro_batches() -> None:
    batch = make_batch(10, seed=2)
    g1, d1 = make_pair(eval_mode=True)
    train_step(g1, d1, LOSS, [batch], "simultaneous")
    g2, d2 = make_pair(eval_mode=True)
    parts = [MicroBatch(batch.real[:7], batch.z[:7]), MicroBatch(batch.real[7:], batch.z[7:])]
    train_step(g2, d2, LOSS, parts, "simultaneous")
    assert_all_close(grads(d1), grads(d2))
    assert_all_close(grads(g1), grads(g2))


def test_alternating_step_over_micro_batches_equals_one_big_batch() -> None:
    batch = make_batch(16, seed=3)
    results = []
    for parts in (1, 4):
        generator, discriminator = make_pair(eval_mode=True)
        opt_g, opt_d = make_optimizers(generator, discriminator, 2e-4, (0.5, 0.999))
        train_step(
            generator,
            discriminator,
            LOSS,
            split(batch, parts),
            "alternating",
            optimizer_g=opt_g,
            optimizer_d=opt_d,
        )
        results.append(
            [
                p.detach().clone()
                for p in list(generator.parameters()) + list(discriminator.parameters())
            ]
        )
    assert_all_close(results[0], results[1])


def test_train_mode_batchnorm_makes_gradients_depend_on_micro_batch_size() -> None:
    # Why the micro-batch size is a run setting in the distributed modes, not a worker's choice.
    batch = make_batch(16, seed=4)
    g1, d1 = make_pair()
    train_step(g1, d1, LOSS, [batch], "simultaneous")
    g2, d2 = make_pair()
    train_step(g2, d2, LOSS, split(batch, 4), "simultaneous")
    assert not torch.allclose(grads(d1)[0], grads(d2)[0], atol=1e-5)


def test_discriminator_gradients_do_not_include_the_generator_loss() -> None:
    batch = make_batch(8, seed=5)
    generator, discriminator = make_pair()
    train_step(generator, discriminator, LOSS, [batch], "simultaneous")
    from_step = grads(discriminator)

    g_ref, d_ref = make_pair()
    d_ref.zero_grad()
    discriminator_backward(d_ref, LOSS, batch.real, g_ref(batch.z))
    only_d_loss = [grad_of(p) / batch.size for p in d_ref.parameters()]
    assert_all_close(from_step, only_d_loss)

    # The seed worker's bug, for contrast: backward of G's loss through an unfrozen D pollutes D.
    g_bug, d_bug = make_pair()
    fake = g_bug(batch.z)
    torch.autograd.backward(LOSS.discriminator(d_bug(batch.real), d_bug(fake.detach())))
    torch.autograd.backward(LOSS.generator(d_bug(fake)))
    assert not torch.allclose(from_step[0], grads(d_bug)[0], atol=1e-4)


def test_generator_gradients_equal_autograd_of_the_generator_loss() -> None:
    batch = make_batch(8, seed=6)
    generator, discriminator = make_pair()
    train_step(generator, discriminator, LOSS, [batch], "simultaneous")
    g_ref, d_ref = make_pair()
    fake = g_ref(batch.z)  # train-mode BN normalises with batch stats: earlier passes don't matter
    expected = torch.autograd.grad(LOSS.generator(d_ref(fake)), list(g_ref.parameters()))
    assert_all_close(grads(generator), list(expected))


def reference_dcgan_step(generator: nn.Module, discriminator: nn.Module, batch: MicroBatch) -> None:
    """pytorch/examples dcgan main.py, written out independently of ganfriends.step."""
    opt_g, opt_d = make_optimizers(generator, discriminator, 2e-4, (0.5, 0.999))
    criterion = nn.BCEWithLogitsLoss()
    discriminator.zero_grad()
    out = discriminator(batch.real)
    criterion(out, torch.ones_like(out)).backward()
    fake = generator(batch.z)
    out = discriminator(fake.detach())
    criterion(out, torch.zeros_like(out)).backward()
    opt_d.step()
    generator.zero_grad()
    out = discriminator(fake)
    criterion(out, torch.ones_like(out)).backward()
    opt_g.step()


def test_alternating_rule_matches_the_reference_dcgan_step() -> None:
    batch = make_batch(8, seed=7)
    generator, discriminator = make_pair()
    opt_g, opt_d = make_optimizers(generator, discriminator, 2e-4, (0.5, 0.999))
    train_step(
        generator, discriminator, LOSS, [batch], "alternating", optimizer_g=opt_g, optimizer_d=opt_d
    )
    g_ref, d_ref = make_pair()
    reference_dcgan_step(g_ref, d_ref, batch)
    assert_all_close(list(generator.parameters()), list(g_ref.parameters()))
    assert_all_close(list(discriminator.parameters()), list(d_ref.parameters()))


def test_simultaneous_rule_computes_the_generator_gradient_on_the_old_discriminator() -> None:
    batch = make_batch(8, seed=8)
    generator, discriminator = make_pair()
    opt_g, opt_d = make_optimizers(generator, discriminator, 2e-4, (0.5, 0.999))
    d_before = copy.deepcopy(discriminator)
    train_step(
        generator,
        discriminator,
        LOSS,
        [batch],
        "simultaneous",
        optimizer_g=opt_g,
        optimizer_d=opt_d,
    )
    g_grads = grads(generator)

    g_ref, _ = make_pair()
    train_step(g_ref, d_before, LOSS, [batch], "simultaneous")  # no optimizer: D stays as it was
    assert_all_close(g_grads, grads(g_ref))


def test_rules_give_different_generators() -> None:
    batch = make_batch(8, seed=9)
    params = {}
    for rule in ("alternating", "simultaneous"):
        generator, discriminator = make_pair()
        opt_g, opt_d = make_optimizers(generator, discriminator, 1e-2, (0.5, 0.999))
        train_step(
            generator, discriminator, LOSS, [batch], rule, optimizer_g=opt_g, optimizer_d=opt_d
        )
        params[rule] = next(generator.parameters()).detach().clone()
    assert not torch.allclose(params["alternating"], params["simultaneous"])


def test_alternating_rule_needs_optimizers() -> None:
    generator, discriminator = make_pair()
    with pytest.raises(ValueError, match="optimizers"):
        train_step(generator, discriminator, LOSS, [make_batch(4, 0)], "alternating")


def test_unknown_rule_is_rejected() -> None:
    generator, discriminator = make_pair()
    with pytest.raises(ValueError, match="alternating, simultaneous"):
        train_step(generator, discriminator, LOSS, [make_batch(4, 0)], "sideways")


def test_step_stats_are_means_over_images() -> None:
    generator, discriminator = make_pair()
    stats = train_step(generator, discriminator, LOSS, split(make_batch(12, 10), 3), "simultaneous")
    assert stats.images == 12
    assert 0 < stats.d_real < 1 and 0 < stats.d_fake < 1
    assert stats.d_loss > 0 and stats.g_loss > 0


def test_discriminator_parameters_still_require_grad_after_the_step() -> None:
    generator, discriminator = make_pair()
    train_step(generator, discriminator, LOSS, [make_batch(4, 11)], "simultaneous")
    assert all(p.requires_grad for p in discriminator.parameters())
