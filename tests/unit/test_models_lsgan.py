from __future__ import annotations

import pytest
import torch

from ganfriends.losses import make_loss
from ganfriends.models import (
    Discriminator,
    Generator,
    ModelConfig,
    build_models,
    count_parameters,
    make_discriminator,
    make_generator,
)
from ganfriends.models.lsgan import FEGAN_MNIST, LsganDiscriminator, LsganGenerator

# FeGAN's dist-lsgan.py defaults: MNIST / Fashion-MNIST, 1 channel, latent 100, 32x32.
FEGAN = ModelConfig(image_size=32, channels=1, latent_dim=100, arch="lsgan")


def test_fegan_setting_has_fegans_parameter_counts() -> None:
    assert FEGAN == FEGAN_MNIST
    generator, discriminator = build_models(FEGAN, seed=0)
    assert isinstance(generator, LsganGenerator)
    assert isinstance(discriminator, LsganDiscriminator)
    assert count_parameters(generator) == 1_049_729
    assert count_parameters(discriminator) == 98_113


def test_lsgan_ignores_the_dcgan_widths() -> None:
    wide = ModelConfig(image_size=32, channels=1, g_features=8, d_features=8, arch="lsgan")
    assert count_parameters(make_generator(wide)) == 1_049_729
    assert count_parameters(make_discriminator(wide)) == 98_113


@pytest.mark.parametrize("channels", [1, 3])
def test_lsgan_shapes_and_range(channels: int) -> None:
    config = ModelConfig(image_size=32, channels=channels, latent_dim=16, arch="lsgan")
    generator, discriminator = build_models(config, seed=0)
    images = generator(torch.randn(5, 16, 1, 1) * 10)
    assert images.shape == (5, channels, 32, 32)
    assert images.min() >= -1 and images.max() <= 1
    assert generator(torch.randn(5, 16)).shape == (5, channels, 32, 32)  # flat z too
    scores = discriminator(images)
    assert scores.shape == (5,)  # like the DCGAN D: what the losses and the step expect


def test_lsgan_discriminator_scores_are_raw_for_the_mse_loss() -> None:
    _, discriminator = build_models(FEGAN, seed=0)
    head = discriminator.main[-1]
    assert isinstance(head, torch.nn.Linear)  # the score is the linear layer's output
    with torch.no_grad():
        head.bias.fill_(5.0)  # far outside (0, 1): survives only without a sigmoid
    images = torch.rand(8, 1, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    scores = discriminator.eval()(images)
    assert scores.min() > 1
    loss = make_loss("lsgan")
    expected = 0.5 * ((scores - 1) ** 2).mean() + 0.5 * (scores**2).mean()
    assert torch.allclose(loss.discriminator(scores, scores), expected)


def test_lsgan_init_follows_fegan_weights_init_normal() -> None:
    generator = make_generator(FEGAN)
    conv = generator.main[4]  # the first 3x3 conv after the projection
    assert isinstance(conv, torch.nn.Conv2d)
    assert conv.weight.std().item() == pytest.approx(0.02, rel=0.05)
    bn = generator.main[5]
    assert isinstance(bn, torch.nn.BatchNorm2d)
    assert bn.eps == 0.8  # FeGAN's nn.BatchNorm2d(128, 0.8)
    assert bn.weight.mean().item() == pytest.approx(1.0, abs=0.01)
    assert torch.all(bn.bias == 0)


def test_build_models_seeded_is_deterministic_for_lsgan() -> None:
    g1, d1 = build_models(FEGAN, seed=5)
    g2, d2 = build_models(FEGAN, seed=5)
    g3, _ = build_models(FEGAN, seed=6)
    for a, b in zip(g1.state_dict().values(), g2.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    for a, b in zip(d1.state_dict().values(), d2.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert not torch.equal(g1.main[1].weight, g3.main[1].weight)


def test_factories_dispatch_on_arch_and_keep_dcgan_classes() -> None:
    dcgan = ModelConfig(image_size=32, channels=1, latent_dim=8, g_features=4, d_features=4)
    assert type(make_generator(dcgan)) is Generator
    assert type(make_discriminator(dcgan)) is Discriminator
    # Every architecture is a Generator / Discriminator, so code typed with those names holds it.
    assert isinstance(make_generator(FEGAN), Generator)
    assert isinstance(make_discriminator(FEGAN), Discriminator)


def test_dcgan_classes_refuse_an_lsgan_config() -> None:
    with pytest.raises(ValueError, match="make_generator"):
        Generator(FEGAN)
    with pytest.raises(ValueError, match="make_discriminator"):
        Discriminator(FEGAN)


def test_lsgan_weights_load_into_a_factory_built_model() -> None:
    generator, discriminator = build_models(FEGAN, seed=1)
    loaded = make_generator(ModelConfig.from_dict(FEGAN.to_dict()))
    loaded.load_state_dict(generator.state_dict())
    make_discriminator(FEGAN).load_state_dict(discriminator.state_dict())
    z = torch.randn(2, 100)
    assert torch.equal(loaded.eval()(z), generator.eval()(z))


def test_model_config_round_trips_with_arch() -> None:
    data = FEGAN.to_dict()
    assert data["arch"] == "lsgan"
    assert ModelConfig.from_dict(data) == FEGAN
    assert ModelConfig.from_dict({**data, "from_the_future": 1}) == FEGAN


def test_a_dict_without_arch_is_dcgan() -> None:
    stored = {"image_size": 32, "channels": 1, "latent_dim": 8, "g_features": 4, "d_features": 4}
    config = ModelConfig.from_dict(stored)
    assert config.arch == "dcgan"
    assert type(make_generator(config)) is Generator


def test_lsgan_refuses_other_image_sizes() -> None:
    with pytest.raises(ValueError, match="32x32"):
        ModelConfig(image_size=64, channels=1, arch="lsgan")


def test_unknown_arch_is_refused() -> None:
    with pytest.raises(ValueError, match="arch"):
        ModelConfig(arch="wgan")
    with pytest.raises(ValueError, match="arch"):
        ModelConfig.from_dict({"arch": "wgan"})
