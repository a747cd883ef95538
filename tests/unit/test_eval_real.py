"""Metric sanity on real Fashion-MNIST with the quick classifier, and the Evaluator's contract."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ganfriends.data import make_dataset
from ganfriends.errors import DatasetError
from ganfriends.evaluation import EvalError, Evaluator, kernel_inception_distance
from ganfriends.models import Generator, ModelConfig
from tests.conftest import requires_fashion_mnist
from tests.unit.test_eval_shared import (
    QUICK_RECIPE,
    QUICK_SAMPLES,
    shared_data_dir,
    shared_quick_evaluator,
)

pytestmark = requires_fashion_mnist
N = QUICK_SAMPLES


@pytest.fixture
def quick_evaluator(tmp_path_factory: pytest.TempPathFactory) -> Evaluator:
    return shared_quick_evaluator(tmp_path_factory)


@pytest.fixture(scope="module")
def train_images() -> torch.Tensor:
    images, _ = make_dataset("fashion-mnist").get_batch(list(range(2 * N)))
    return images


def noise(n: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 1, 32, 32, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_held_out_reference(quick_evaluator: Evaluator) -> None:
    described = quick_evaluator.describe()
    assert described["dataset"] == "fashion-mnist" and described["split"] == "test"
    assert quick_evaluator.num_real == N
    assert quick_evaluator.reference.image_shape == (1, 32, 32)


def test_fid_test_vs_train_is_small_and_real_vs_noise_large(
    quick_evaluator: Evaluator, train_images: torch.Tensor
) -> None:
    real = quick_evaluator.evaluate_images(train_images[:N])
    fake = quick_evaluator.evaluate_images(noise(N))
    assert real["fid"] < 5
    assert fake["fid"] > 100 * real["fid"]
    assert fake["kid_mean"] > 20 * fake["kid_std"]
    assert real["num_samples"] == N


def test_identical_sets(quick_evaluator: Evaluator) -> None:
    metrics = quick_evaluator.evaluate_features(quick_evaluator.reference.features)
    assert metrics["fid"] == pytest.approx(0.0, abs=1e-6)
    assert metrics["precision"] == 1.0 and metrics["recall"] == 1.0


def test_kid_is_unbiased_on_disjoint_real_samples(
    quick_evaluator: Evaluator, train_images: torch.Tensor
) -> None:
    features = quick_evaluator.extractor.features(train_images)
    mean, std = kernel_inception_distance(features[:N], features[N:])
    assert abs(mean) < 3 * std


def test_precision_recall_of_real_and_noise(
    quick_evaluator: Evaluator, train_images: torch.Tensor
) -> None:
    real = quick_evaluator.evaluate_images(train_images[:N])
    assert real["precision"] > 0.8 and real["recall"] > 0.8
    fake = quick_evaluator.evaluate_images(noise(N, seed=1))
    assert fake["recall"] == 0.0  # noise covers none of the data
    # Noise collapses to one region of feature space, so its precision is all or nothing
    # depending on which real outliers are in the reference (see metrics.precision_recall).
    # What must hold: the real manifold, not the noise's, covers the real images.
    assert fake["precision"] < real["precision"]


def tiny_generator() -> Generator:
    torch.manual_seed(0)
    return Generator(ModelConfig(image_size=32, channels=1, latent_dim=16, g_features=8))


def test_evaluate_a_generator_restores_its_state(quick_evaluator: Evaluator) -> None:
    generator = tiny_generator().train()
    batchnorm = next(m for m in generator.modules() if isinstance(m, torch.nn.BatchNorm2d))
    batchnorm.eval()  # a mixed-mode module tree must come back exactly as it was
    modes = [m.training for m in generator.modules()]
    before = {k: v.clone() for k, v in generator.state_dict().items()}
    metrics = quick_evaluator.evaluate(generator, num_samples=600)
    assert set(metrics) == {"fid", "kid_mean", "kid_std", "precision", "recall", "num_samples"}
    assert metrics["num_samples"] == 600
    assert [m.training for m in generator.modules()] == modes
    for name, value in generator.state_dict().items():
        assert torch.equal(value, before[name]), name  # BatchNorm statistics untouched
    assert all(p.grad is None for p in generator.parameters())
    assert quick_evaluator.evaluate(generator, num_samples=600) == metrics  # fixed noise


def test_evaluate_rejects_bad_requests(quick_evaluator: Evaluator) -> None:
    with pytest.raises(EvalError, match="prepared 2000 real images"):
        quick_evaluator.evaluate(tiny_generator(), num_samples=N + 1)
    big = Generator(ModelConfig(image_size=64, channels=1, latent_dim=16, g_features=8))
    with pytest.raises(EvalError, match=r"1x64x64 but the real fashion-mnist images are 1x32x32"):
        quick_evaluator.evaluate(big, num_samples=100)
    with pytest.raises(EvalError, match="latent_dim"):
        quick_evaluator.evaluate(torch.nn.Sequential(torch.nn.Identity()), num_samples=100)


def test_real_features_are_cached_on_disk(tmp_path_factory: pytest.TempPathFactory) -> None:
    shared_quick_evaluator(tmp_path_factory)  # prepared (or loaded) once
    messages: list[str] = []
    again = Evaluator.for_dataset(
        num_samples=N,
        device="cpu",
        recipe=QUICK_RECIPE,
        data_dir=shared_data_dir(tmp_path_factory),
        progress=messages.append,
    )
    assert not any("computing" in m or "training" in m for m in messages), messages
    assert again.num_real == N


def test_unknown_and_unlabelled_datasets_fail_fast(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="unknown dataset 'svhn'"):
        Evaluator.for_dataset("svhn", cache_dir=tmp_path)
    with pytest.raises(EvalError, match="FID on celeba needs Inception features") as info:
        Evaluator.for_dataset("celeba", cache_dir=tmp_path)
    assert "\n" not in str(info.value)
