"""Screening a version's results: norm clipping around the median, free-riders, non-finite state."""

from __future__ import annotations

import math

import pytest
import torch

from ganfriends.aggregate import group_norms, lower_median, norm_scales, scale_groups
from ganfriends.models import ModelConfig, build_models
from ganfriends.rules.base import ServerState, UnitResult
from ganfriends.rules.screening import (
    clip_results,
    copies_differ,
    first_non_finite,
    is_all_zero,
)
from ganfriends.step import StepStats, make_optimizers


def result(g: float, d: float) -> UnitResult:
    """A result whose G group has norm g * sqrt(2) and whose D group has norm d."""
    return UnitResult(
        parameters={"g.a": torch.tensor([g, 0.0]), "g.b": torch.tensor([0.0, g]),
                    "d.a": torch.tensor([d])},
        buffers={},
        stats=StepStats(images=8),
    )  # fmt: skip


def test_group_norms_are_l2_norms_per_network_prefix() -> None:
    norms = group_norms({"g.a": torch.tensor([3.0]), "g.b": torch.tensor([4.0]),
                         "feedback": torch.tensor([1.0, 1.0])})  # fmt: skip
    assert norms == pytest.approx({"g": 5.0, "feedback": math.sqrt(2)})


def test_the_lower_median_of_an_even_count_is_the_smaller_middle_value() -> None:
    assert lower_median([4.0, 1.0, 1000.0, 2.0]) == 2.0
    assert lower_median([5.0, 1.0, 3.0]) == 3.0


def test_a_group_beyond_factor_times_the_median_is_scaled_to_the_bound() -> None:
    scales = norm_scales([{"g": 1.0}, {"g": 1.2}, {"g": 100.0}], factor=10.0)
    assert scales[0]["g"] == 1.0 and scales[1]["g"] == 1.0
    assert 100.0 * scales[2]["g"] == pytest.approx(12.0)  # 10 x the median 1.2


def test_with_two_results_the_smaller_one_sets_the_bound() -> None:
    scales = norm_scales([{"d": 1.0}, {"d": 1e6}], factor=10.0)
    assert 1e6 * scales[1]["d"] == pytest.approx(10.0)


def test_a_factor_of_zero_turns_screening_off() -> None:
    assert norm_scales([{"g": 1.0}, {"g": 1e9}], factor=0.0) == [{"g": 1.0}, {"g": 1.0}]


def test_scaling_multiplies_only_the_scaled_group() -> None:
    tensors = {"g.a": torch.tensor([2.0]), "d.a": torch.tensor([3.0])}
    out = scale_groups(tensors, {"g": 0.5})
    assert out["g.a"].item() == 1.0 and out["d.a"] is tensors["d.a"]


def test_honest_results_pass_through_unchanged() -> None:
    results = [result(1.0, 1.0), result(1.1, 0.9), result(0.9, 1.2)]
    screened, clipped = clip_results(results, factor=10.0)
    assert clipped == []
    assert all(a is b for a, b in zip(screened, results, strict=True))


def test_an_outlier_is_clipped_in_the_group_where_it_lies() -> None:
    results = [result(1.0, 1.0), result(1.0, 1.0), result(500.0, 1.0)]
    screened, clipped = clip_results(results, factor=10.0)
    assert [(c.index, c.group) for c in clipped] == [(2, "g")]
    assert group_norms(screened[2].parameters)["g"] == pytest.approx(10 * math.sqrt(2))
    assert torch.equal(screened[2].parameters["d.a"], results[2].parameters["d.a"])
    assert group_norms(results[2].parameters)["g"] > 700  # the input is not modified


def test_all_zero_results_are_recognised() -> None:
    assert is_all_zero(result(0.0, 0.0))
    assert not is_all_zero(result(0.0, 1e-12))


def test_non_finite_optimizer_state_is_found_before_publishing() -> None:
    g, d = build_models(ModelConfig(image_size=32, channels=1, latent_dim=4, g_features=4,
                                    d_features=4))  # fmt: skip
    opt_g, opt_d = make_optimizers(g, d, 2e-4, (0.5, 0.999))
    state = ServerState(g, d, opt_g, opt_d)
    assert first_non_finite(state) is None
    for p in g.parameters():
        p.grad = torch.full_like(p, 3e38)
    opt_g.step()  # 3e38 squared overflows the second moment
    assert first_non_finite(state) is not None


def test_copies_within_rounding_agree() -> None:
    assert copies_differ(result(1.0, 2.0), result(1.0 + 1e-4, 2.0 - 1e-4)) is None


def test_copies_differ_in_the_group_that_moved_most() -> None:
    # G: |(0.5,0.5)-(1,1)...| -> sqrt(2)*0.5 / sqrt(2) = 0.5; D: |2 - 2.4| / 2.4 = 1/6.
    differs = copies_differ(result(1.0, 2.0), result(0.5, 2.4))
    assert differs is not None
    assert differs[0] == "g" and differs[1] == pytest.approx(0.5)


def test_a_scaled_copy_differs_by_its_relative_change() -> None:
    differs = copies_differ(result(1.0, 1.0), result(1.1, 1.0), tolerance=0.05)
    assert differs is not None and differs[1] == pytest.approx(0.1 / 1.1)
