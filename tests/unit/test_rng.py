from __future__ import annotations

import torch

from ganfriends import rng


def test_same_key_gives_same_noise() -> None:
    assert torch.equal(
        rng.latent_noise(4, 8, 1, rng.NOISE, 5), rng.latent_noise(4, 8, 1, rng.NOISE, 5)
    )


def test_different_steps_give_different_noise() -> None:
    assert not torch.equal(
        rng.latent_noise(4, 8, 1, rng.NOISE, 5), rng.latent_noise(4, 8, 1, rng.NOISE, 6)
    )


def test_purposes_do_not_share_streams() -> None:
    assert rng.derive_seed(0, rng.NOISE, 1) != rng.derive_seed(0, rng.DATA_ORDER, 1)


def test_permutation_is_a_permutation() -> None:
    perm = rng.permutation(100, 3, rng.DATA_ORDER, 0)
    assert sorted(perm.tolist()) == list(range(100))


def test_noise_does_not_touch_the_global_generator() -> None:
    torch.manual_seed(0)
    expected = torch.rand(1)
    torch.manual_seed(0)
    rng.latent_noise(16, 8, 0, rng.NOISE, 0)
    assert torch.equal(torch.rand(1), expected)
