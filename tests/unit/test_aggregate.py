from __future__ import annotations

import itertools

import pytest
import torch

from ganfriends.aggregate import Contribution, Mean, WeightedMean, merge_buffers, weighted_mean

AGGREGATORS = [WeightedMean(), Mean()]


def contribution(images: int, value: float) -> Contribution:
    return Contribution(images, {"w": torch.full((2, 3), value), "b": torch.full((3,), -value)})


@pytest.mark.parametrize("aggregator", AGGREGATORS, ids=lambda a: type(a).__name__)
def test_identical_inputs_give_that_input(aggregator: WeightedMean | Mean) -> None:
    out = aggregator.aggregate([contribution(5, 0.25)] * 3)
    assert torch.allclose(out["w"], torch.full((2, 3), 0.25))


@pytest.mark.parametrize("aggregator", AGGREGATORS, ids=lambda a: type(a).__name__)
def test_aggregation_is_invariant_to_order(aggregator: WeightedMean | Mean) -> None:
    parts = [contribution(3, 1.0), contribution(7, 2.0), contribution(1, -4.0)]
    results = [aggregator.aggregate(list(p))["w"] for p in itertools.permutations(parts)]
    for r in results[1:]:
        assert torch.allclose(r, results[0], atol=1e-7)


def test_weighted_mean_respects_image_counts() -> None:
    out = weighted_mean([contribution(1, 0.0), contribution(3, 4.0)])
    assert torch.allclose(out["w"], torch.full((2, 3), 3.0))


def test_mean_ignores_image_counts() -> None:
    out = Mean().aggregate([contribution(1, 0.0), contribution(3, 4.0)])
    assert torch.allclose(out["w"], torch.full((2, 3), 2.0))


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
