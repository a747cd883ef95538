from __future__ import annotations

import pytest
import torch

from ganfriends.rules.sync import SyncPlan


def plan(**overrides: int) -> SyncPlan:
    values = {"dataset_size": 1000, "seed": 3, "images_per_unit": 100, "units_per_update": 3,
              "micro_batch": 32, "epochs": 2}  # fmt: skip
    values.update(overrides)
    return SyncPlan(**values)


def test_an_epoch_covers_the_dataset_once_in_units() -> None:
    p = plan()
    images = [i for unit in range(p.units_per_epoch) for i in p.unit_images(unit)]
    assert sorted(images) == list(range(1000))


def test_epochs_use_different_orders() -> None:
    p = plan()
    assert p.unit_images(0) != p.unit_images(p.units_per_epoch)


def test_unit_contents_depend_only_on_seed_and_index() -> None:
    assert plan().unit_images(7) == plan().unit_images(7)
    assert plan().unit_images(7) != plan(seed=4).unit_images(7)


def test_updates_use_fixed_consecutive_units_and_the_last_may_be_short() -> None:
    p = plan()  # 10 units per epoch, 20 units, 3 per update -> 7 updates
    assert p.total_updates == 7
    assert list(p.units_of_update(0)) == [0, 1, 2]
    assert list(p.units_of_update(6)) == [18, 19]
    assert list(p.units_of_update(7)) == []


def test_max_updates_caps_the_run() -> None:
    p = plan(max_updates=2)
    assert p.total_updates == 2
    assert list(p.units_of_update(2)) == []


def test_the_tail_of_an_epoch_smaller_than_a_unit_is_left_out() -> None:
    p = plan(dataset_size=1050)
    assert p.units_per_epoch == 10


def test_micro_batches_split_a_unit() -> None:
    p = plan()
    assert [len(b) for b in p.micro_batches(p.unit_images(0))] == [32, 32, 32, 4]


def test_noise_depends_on_unit_and_micro_batch_only() -> None:
    p = plan()
    assert torch.equal(p.noise(5, 1, 4, 8), plan().noise(5, 1, 4, 8))
    assert not torch.equal(p.noise(5, 1, 4, 8), p.noise(5, 2, 4, 8))
    assert not torch.equal(p.noise(5, 1, 4, 8), p.noise(6, 1, 4, 8))


def test_epochs_done_counts_units() -> None:
    p = plan()
    assert p.epochs_done(0) == 0
    assert p.epochs_done(5) == pytest.approx(1.5)
    assert p.epochs_done(7) == 2


def test_a_unit_larger_than_the_dataset_is_refused() -> None:
    with pytest.raises(ValueError, match="images-per-work-unit"):
        plan(images_per_unit=2000)
