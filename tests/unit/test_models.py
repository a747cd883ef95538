from __future__ import annotations

import pytest
import torch
from torch import nn

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
from tests.tensors import grad_of


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


SMALL = ModelConfig(image_size=32, channels=1, latent_dim=16, g_features=8, d_features=8)


def layer_shapes(
    network: nn.Module, x: torch.Tensor, kind: type[nn.Module]
) -> list[tuple[int, ...]]:
    """The output shape of each ``kind`` layer of ``network.main`` on input ``x``, in order."""
    shapes: list[tuple[int, ...]] = []
    assert isinstance(network.main, nn.Sequential)
    for layer in network.main:
        x = layer(x)
        if isinstance(layer, kind):
            shapes.append(tuple(x.shape))
    return shapes


def test_generator_output_is_in_minus_one_one_and_follows_its_noise() -> None:
    generator = Generator(ModelConfig(image_size=32, channels=1))
    images = generator(torch.randn(8, 100) * 10)
    assert images.min() >= -1 and images.max() <= 1
    # Distinct noise, distinct images: a generator that ignored z would pass the range alone.
    assert (images[0] - images[1]).abs().max() > 0.1


def test_each_generator_stage_doubles_the_image_and_halves_the_width() -> None:
    # DCGAN's G for 32x32: a 4x4 projection, then stride-2 stages; g_features at the last hidden.
    shapes = layer_shapes(Generator(SMALL), torch.randn(2, 16, 1, 1), nn.ConvTranspose2d)
    assert shapes == [(2, 32, 4, 4), (2, 16, 8, 8), (2, 8, 16, 16), (2, 1, 32, 32)]


def test_each_discriminator_stage_halves_the_image_and_doubles_the_width() -> None:
    shapes = layer_shapes(Discriminator(SMALL), torch.randn(2, 1, 32, 32), nn.Conv2d)
    assert shapes == [(2, 8, 16, 16), (2, 16, 8, 8), (2, 32, 4, 4), (2, 1, 1, 1)]


def test_a_known_seed_gives_known_networks() -> None:
    # Pinned from the DCGAN networks as built today: a change of layers, order or init shows.
    generator, discriminator = build_models(SMALL, seed=0)
    z = torch.randn(4, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        images = generator(z)
        scores = discriminator(images)
    assert images.sum().item() == pytest.approx(21.869164, abs=1e-4)
    assert images[0, 0, 0, :4].tolist() == pytest.approx(
        [0.0106437, -0.0172644, 0.0250980, -0.0284888], abs=1e-6
    )
    assert scores.tolist() == pytest.approx(
        [-0.1787591, 0.0712066, -0.3714336, -0.0609372], abs=1e-5
    )


def test_gradients_reach_every_parameter_of_both_networks() -> None:
    generator, discriminator = build_models(SMALL, seed=0)
    torch.autograd.backward(discriminator(generator(torch.randn(4, 16))).sum())
    for name, parameter in [*generator.named_parameters(), *discriminator.named_parameters()]:
        assert grad_of(parameter).abs().sum() > 0, name


def test_a_discriminator_score_depends_on_its_own_image_only() -> None:
    # In eval mode (BatchNorm on its running statistics) each image is scored on its own.
    discriminator = Discriminator(SMALL).eval()
    images = torch.rand(3, 1, 32, 32) * 2 - 1
    changed = images.clone()
    changed[1] = -changed[1]
    with torch.no_grad():
        before, after = discriminator(images), discriminator(changed)
    assert before[1] != after[1]
    assert torch.equal(before[[0, 2]], after[[0, 2]])


def test_generator_accepts_flat_noise() -> None:
    generator = Generator(ModelConfig(image_size=32, channels=1, latent_dim=10, g_features=4))
    assert generator(torch.randn(3, 10)).shape == (3, 1, 32, 32)


def test_dcgan_init_statistics() -> None:
    generator = Generator()
    conv, bn = generator.main[0], generator.main[1]
    assert isinstance(conv, nn.ConvTranspose2d) and isinstance(bn, nn.BatchNorm2d)
    assert abs(conv.weight.mean().item()) < 1e-3
    assert conv.weight.std().item() == pytest.approx(0.02, rel=0.05)
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
        # Each parametrized field is an int one; mypy checks ** against every field.
        ModelConfig(**{field: value})  # type: ignore[arg-type]


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
