"""FID, KID and precision/recall on synthetic features with known answers."""

from __future__ import annotations

import math

import pytest
import torch

from ganfriends.evaluation import (
    EvalError,
    compute_metrics,
    frechet_distance,
    frechet_distance_from_stats,
    kernel_inception_distance,
    precision_recall,
)
from ganfriends.evaluation.metrics import feature_statistics, trace_sqrt_product


def gaussian(n: int, dim: int, seed: int, mean: float = 0.0, scale: float = 1.0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, dim, generator=gen) * scale + mean


def test_frechet_closed_form_for_diagonal_gaussians() -> None:
    gen = torch.Generator().manual_seed(0)
    mu1, mu2 = (torch.randn(16, generator=gen, dtype=torch.float64) for _ in range(2))
    s1 = torch.rand(16, generator=gen, dtype=torch.float64) + 0.1
    s2 = torch.rand(16, generator=gen, dtype=torch.float64) * 3
    s2[:4] = 0  # singular covariance (dead units) must work too
    expected = float(((mu1 - mu2) ** 2).sum() + (s1 + s2 - 2 * (s1 * s2).sqrt()).sum())
    got = frechet_distance_from_stats(mu1, torch.diag(s1), mu2, torch.diag(s2))
    assert got == pytest.approx(expected, rel=1e-10)


def test_trace_sqrt_matches_the_eigvals_formula_for_full_covariances() -> None:
    a, b = gaussian(200, 12, 1), gaussian(200, 12, 2) @ torch.randn(12, 12)
    s1, s2 = torch.cov(a.T.double()), torch.cov(b.T.double())
    reference = torch.linalg.eigvals(s1 @ s2).sqrt().real.sum()
    assert float(trace_sqrt_product(s1, s2)) == pytest.approx(float(reference), rel=1e-8)
    # Rotation invariance: FID does not depend on the basis of the feature space.
    q, _ = torch.linalg.qr(torch.randn(12, 12, dtype=torch.float64))
    rotated = trace_sqrt_product(q @ s1 @ q.T, q @ s2 @ q.T)
    assert float(rotated) == pytest.approx(float(reference), rel=1e-8)


def test_fid_of_samples_approaches_the_closed_form() -> None:
    # N(0, I) vs N(1, 4 I) in 8-d: |mu|^2 = 8, tr(S1 + S2 - 2 sqrt(S1 S2)) = 8 * (1 + 4 - 4) = 8.
    fid = frechet_distance(gaussian(20000, 8, 3), gaussian(20000, 8, 4, mean=1.0, scale=2.0))
    assert fid == pytest.approx(16.0, rel=0.03)


def test_identical_sets_have_zero_fid_and_full_precision_recall() -> None:
    x = torch.relu(gaussian(500, 32, 5))  # ReLU-like: many exact zeros
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6)
    assert precision_recall(x, x) == (1.0, 1.0)


def test_kid_is_unbiased_for_two_samples_of_one_distribution() -> None:
    mean, std = kernel_inception_distance(gaussian(2000, 16, 6), gaussian(2000, 16, 7), seed=1)
    assert abs(mean) < 3 * std
    shifted, _ = kernel_inception_distance(gaussian(2000, 16, 6), gaussian(2000, 16, 8, mean=0.5))
    assert shifted > 100 * std


def test_kid_matches_a_direct_computation_on_one_subset() -> None:
    x, y = gaussian(50, 4, 9), gaussian(50, 4, 10, mean=0.3)
    mean, std = kernel_inception_distance(x, y, subsets=1, subset_size=50)

    def k(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a.double() @ b.double().T / 4 + 1) ** 3

    def off(m: torch.Tensor) -> torch.Tensor:
        return (m.sum() - m.diagonal().sum()) / (50 * 49)

    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    assert mean == pytest.approx(float(off(kxx) + off(kyy) - 2 * kxy.mean()), rel=1e-5)
    assert std == 0.0


def test_kid_is_deterministic_for_its_seed() -> None:
    x, y = gaussian(300, 8, 11), gaussian(300, 8, 12)
    a = kernel_inception_distance(x, y, subsets=10, subset_size=100, seed=4)
    assert a == kernel_inception_distance(x, y, subsets=10, subset_size=100, seed=4)
    assert a != kernel_inception_distance(x, y, subsets=10, subset_size=100, seed=5)


def test_precision_recall_of_disjoint_and_nested_sets() -> None:
    real = gaussian(1000, 8, 13)
    assert precision_recall(real, gaussian(1000, 8, 14, mean=50.0)) == (0.0, 0.0)
    # A generator covering a quarter of the data (in 2-d, where k-NN balls are small): every
    # sample is realistic, but three quarters of the data are missed.
    plane = gaussian(2000, 2, 13)
    narrow = plane[plane[:, 0] > plane[:, 0].quantile(0.75)]
    precision, recall = precision_recall(plane, narrow)
    assert precision == 1.0
    assert 0.2 < recall < 0.35


def test_precision_recall_chunks_agree_with_one_block(monkeypatch: pytest.MonkeyPatch) -> None:
    real, fake = gaussian(700, 6, 15), gaussian(650, 6, 16, scale=1.3)
    whole = precision_recall(real, fake)
    monkeypatch.setattr("ganfriends.evaluation.metrics._CDIST_CHUNK", 64)
    assert precision_recall(real, fake) == whole


def test_compute_metrics_keys_and_sample_count() -> None:
    metrics = compute_metrics(gaussian(300, 8, 17), gaussian(200, 8, 18), kid_subsets=5)
    assert set(metrics) == {"fid", "kid_mean", "kid_std", "precision", "recall", "num_samples"}
    assert metrics["num_samples"] == 200
    assert all(math.isfinite(v) for v in metrics.values())


def test_bad_shapes_raise_one_line_errors() -> None:
    with pytest.raises(EvalError, match="N >= 2"):
        frechet_distance(torch.zeros(1, 4), torch.zeros(5, 4))
    with pytest.raises(EvalError, match="N >= 4"):
        precision_recall(torch.zeros(3, 4), torch.zeros(5, 4))
    stats = feature_statistics(gaussian(10, 3, 19))
    assert stats[0].dtype == torch.float64 and stats[1].shape == (3, 3)
