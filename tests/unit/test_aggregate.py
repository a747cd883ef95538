from __future__ import annotations

import itertools

import pytest
import torch

from ganfriends.aggregate import Contribution, merge_buffers, weighted_mean


def contribution(images: int, value: float) -> Contribution:
    return Contribution(images, {"w": torch.full((2, 3), value), "b": torch.full((3,), -value)})


def test_identical_inputs_give_that_input() -> None:
    out = weighted_mean([contribution(5, 0.25)] * 3)
    assert torch.allclose(out["w"], torch.full((2, 3), 0.25))


def test_aggregation_is_invariant_to_order() -> None:
    parts = [contribution(3, 1.0), contribution(7, 2.0), contribution(1, -4.0)]
    results = [weighted_mean(list(p))["w"] for p in itertools.permutations(parts)]
    for r in results[1:]:
        assert torch.allclose(r, results[0], atol=1e-7)


def test_weighted_mean_respects_image_counts() -> None:
    out = weighted_mean([contribution(1, 0.0), contribution(3, 4.0)])
    assert torch.allclose(out["w"], torch.full((2, 3), 3.0))


def test_fractional_weights_give_the_weighted_mean() -> None:
    out = weighted_mean(
        [Contribution(0.25, {"w": torch.zeros(2)}), Contribution(0.75, {"w": torch.ones(2)})]
    )
    assert torch.allclose(out["w"], torch.full((2,), 0.75))


def test_weights_summing_to_zero_are_an_error() -> None:
    with pytest.raises(ValueError, match="weight"):
        weighted_mean([Contribution(0.0, {"w": torch.zeros(2)})])


def test_weighted_mean_of_unit_means_is_the_mean_over_all_images() -> None:
    per_image = torch.randn(10, 4)
    units = [per_image[:3], per_image[3:4], per_image[4:]]
    out = weighted_mean([Contribution(len(u), {"g": u.mean(0)}) for u in units])
    assert torch.allclose(out["g"], per_image.mean(0), atol=1e-6)


def test_mismatched_names_are_an_error() -> None:
    with pytest.raises(ValueError, match="names"):
        weighted_mean(
            [Contribution(1, {"a": torch.zeros(1)}), Contribution(1, {"b": torch.zeros(1)})]
        )


def test_nothing_to_aggregate_is_an_error() -> None:
    with pytest.raises(ValueError):
        weighted_mean([])


def test_merge_buffers_averages_statistics_and_takes_the_max_counter() -> None:
    a = Contribution(1, {"running_mean": torch.zeros(2), "num_batches_tracked": torch.tensor(5)})
    b = Contribution(3, {"running_mean": torch.ones(2), "num_batches_tracked": torch.tensor(7)})
    out = merge_buffers([a, b])
    assert torch.allclose(out["running_mean"], torch.full((2,), 0.75))
    assert out["num_batches_tracked"].item() == 7
    assert out["num_batches_tracked"].dtype == torch.int64
