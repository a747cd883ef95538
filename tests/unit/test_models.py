from __future__ import annotations

import pytest
import torch

from ganfriends.config import option_fields
from ganfriends.models import (
    MAX_FEATURES,
    MAX_LATENT_DIM,
    Discriminator,
    Generator,
    ModelConfig,
    build_models,
    count_parameters,
)


def test_default_generator_is_the_seed_faq_model() -> None:
    assert Generator()(torch.randn(16, 100, 1, 1)).shape == (16, 3, 64, 64)


def test_default_models_have_the_seed_parameter_counts() -> None:
    assert count_parameters(Generator()) == 3_576_704
    assert count_parameters(Discriminator()) == 2_765_568


@pytest.mark.parametrize("image_size", [32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_generator_and_discriminator_shapes(image_size: int, channels: int) -> None:
    config = ModelConfig(
        image_size=image_size, channels=channels, latent_dim=16, g_features=8, d_features=8
    )
    generator, discriminator = Generator(config), Discriminator(config)
    images = generator(torch.randn(5, 16, 1, 1))
    assert images.shape == (5, channels, image_size, image_size)
    assert discriminator(images).shape == (5,)


def test_generator_output_is_in_minus_one_one() -> None:
    images = Generator(ModelConfig(image_size=32, channels=1))(torch.randn(8, 100) * 10)
    assert images.min() >= -1 and images.max() <= 1


def test_generator_accepts_flat_noise() -> None:
    generator = Generator(ModelConfig(image_size=32, channels=1, latent_dim=10, g_features=4))
    assert generator(torch.randn(3, 10)).shape == (3, 1, 32, 32)


def test_dcgan_init_statistics() -> None:
    generator = Generator()
    conv = generator.main[0].weight
    assert abs(conv.mean().item()) < 1e-3
    assert conv.std().item() == pytest.approx(0.02, rel=0.05)
    bn = generator.main[1]
    assert bn.weight.mean().item() == pytest.approx(1.0, abs=0.01)
    assert torch.all(bn.bias == 0)


def test_build_models_with_a_seed_is_reproducible_and_leaves_global_rng_alone() -> None:
    config = ModelConfig(image_size=32, channels=1, g_features=8, d_features=8)
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    g1, d1 = build_models(config, seed=7)
    after = torch.rand(1)
    g2, d2 = build_models(config, seed=7)
    assert torch.equal(before, after)
    for a, b in zip(
        list(g1.parameters()) + list(d1.parameters()),
        list(g2.parameters()) + list(d2.parameters()),
        strict=True,
    ):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    ("field", "value"),
    [("image_size", 48), ("channels", 2), ("latent_dim", 0), ("latent_dim", MAX_LATENT_DIM + 1),
     ("g_features", MAX_FEATURES + 1), ("d_features", 10**9)],
)  # fmt: skip
def test_model_config_rejects_bad_values(field: str, value: int) -> None:
    with pytest.raises(ValueError, match=field):
        ModelConfig(**{field: value})


def test_the_training_options_stop_where_model_config_does() -> None:
    # The config checks first, in one line naming the flag; ModelConfig guards stored configs.
    fields = option_fields("training")
    assert fields["latent_dim"].metadata["maximum"] == MAX_LATENT_DIM
    assert fields["g_features"].metadata["maximum"] == MAX_FEATURES
    assert fields["d_features"].metadata["maximum"] == MAX_FEATURES
    ModelConfig(latent_dim=MAX_LATENT_DIM, g_features=MAX_FEATURES, d_features=MAX_FEATURES)


def test_model_config_round_trips_through_a_dict() -> None:
    config = ModelConfig(image_size=32, channels=1, latent_dim=64, g_features=32, d_features=16)
    assert ModelConfig.from_dict(config.to_dict()) == config
