from __future__ import annotations

import pytest
import torch

from ganfriends.rules.sync_plan import SyncPlan
from ganfriends.schedule import BatchSchedule


def plan(**overrides: int | str) -> SyncPlan:
    values: dict[str, int | str] = {"dataset_size": 1000, "seed": 3, "images_per_unit": 100,
                                    "units_per_update": 3, "micro_batch": 32,
                                    "epochs": 2, "update_rule": "simultaneous"}  # fmt: skip
    values.update(overrides)
    # ``overrides`` name SyncPlan's fields, int or str each; mypy checks ** against all of them.
    return SyncPlan(**values)  # type: ignore[arg-type]


def test_an_epoch_covers_the_dataset_once_in_units_but_its_tail() -> None:
    p = plan()  # batches of 300: 3 steps per epoch, 900 images, a tail of 100 left out
    images = [i for unit in range(p.units_per_epoch) for i in p.unit_images(unit)]
    assert len(images) == 900
    assert len(set(images)) == 900


def test_a_steps_units_are_the_rows_of_the_schedules_batch() -> None:
    p = plan()
    schedule = BatchSchedule(1000, 300, seed=3)
    units = [i for unit in p.units_of_update(1) for i in p.unit_images(unit)]
    assert units == schedule.images(1)


def test_a_units_noise_is_its_rows_of_the_steps_noise() -> None:
    p = plan()
    step_noise = BatchSchedule(1000, 300, seed=3).noise(2, 8)
    unit = p.units_of_update(2)[1]
    assert torch.equal(p.unit_noise(unit, 8), step_noise[100:200])


def test_epochs_use_different_orders() -> None:
    p = plan()
    assert p.unit_images(0) != p.unit_images(p.units_per_epoch)


def test_unit_contents_depend_only_on_seed_and_index() -> None:
    assert plan().unit_images(7) == plan().unit_images(7)
    assert plan().unit_images(7) != plan(seed=4).unit_images(7)


def test_simultaneous_steps_use_fixed_consecutive_units() -> None:
    p = plan()  # 3 steps per epoch, 2 epochs
    assert p.total_updates == 6
    assert p.total_versions == 6
    assert p.units_of_update(0) == [0, 1, 2]
    assert p.units_of_update(5) == [15, 16, 17]
    assert p.units_of_update(6) == []


def test_alternating_steps_publish_a_d_version_then_a_g_version() -> None:
    p = plan(update_rule="alternating")
    assert p.total_versions == 12
    assert (p.phase(4), p.phase(5)) == ("D", "G")
    assert p.units_of_update(4) == [12, 14, 16]
    assert p.units_of_update(5) == [13, 15, 17]
    assert p.unit_images(14) == p.unit_images(15) == plan().unit_images(7)


def test_max_updates_caps_the_run_in_steps() -> None:
    p = plan(max_updates=2, update_rule="alternating")
    assert p.total_updates == 2
    assert p.total_versions == 4
    assert p.units_of_update(4) == []


def test_micro_batches_split_a_unit() -> None:
    p = plan()
    assert [len(b) for b in p.micro_batches(p.unit_images(0))] == [32, 32, 32, 4]


def test_epochs_done_counts_whole_steps() -> None:
    p = plan(update_rule="alternating")
    assert p.epochs_done(0) == 0
    assert p.epochs_done(3) == pytest.approx(1 / 3)  # D stepped twice, G once
    assert p.epochs_done(6) == 1
    assert p.epochs_done(12) == 2


def test_a_unit_larger_than_the_dataset_is_refused() -> None:
    with pytest.raises(ValueError, match="images-per-work-unit"):
        plan(images_per_unit=2000)


def test_an_update_larger_than_the_dataset_is_refused() -> None:
    with pytest.raises(ValueError, match="workunits-per-update"):
        plan(units_per_update=11)


def test_a_plan_of_an_older_schedule_is_refused() -> None:
    stored = plan().to_dict()
    del stored["schedule"]
    with pytest.raises(ValueError, match="older ganfriends"):
        SyncPlan.from_dict(stored)


def test_a_plan_survives_its_stored_form() -> None:
    p = plan(update_rule="alternating", max_updates=4)
    assert SyncPlan.from_dict(p.to_dict()) == p


def test_a_stored_plan_without_an_update_rule_reads_as_the_simultaneous_rule_it_ran() -> None:
    # Every class run before the key was stored ran the simultaneous rule.
    stored = plan(update_rule="alternating").to_dict()
    del stored["update_rule"]
    assert SyncPlan.from_dict(stored).update_rule == "simultaneous"


def test_a_new_plan_takes_the_configs_update_rule_default() -> None:
    from ganfriends.config import Config
    from ganfriends.data.memory import InMemoryDataset

    class Tiny(InMemoryDataset):
        name, channels = "tiny", 1

    config = Config()
    dataset = Tiny(torch.zeros(1000, 1, 32, 32, dtype=torch.uint8), "0" * 64)

    assert SyncPlan.from_config(config, dataset).update_rule == config.training.update_rule


@pytest.mark.parametrize("mode", ["federated", "md-gan"])
def test_a_bfloat16_transfer_is_refused_for_modes_that_upload_float32(mode: str) -> None:
    from ganfriends.config import Config
    from ganfriends.data.memory import InMemoryDataset
    from ganfriends.errors import GanError
    from ganfriends.rules import plan_from_config

    class Tiny(InMemoryDataset):
        name, channels = "tiny", 1

    config = Config()
    config.coordinator.transfer_dtype = "bfloat16"
    dataset = Tiny(torch.zeros(64, 1, 32, 32, dtype=torch.uint8), "0" * 64)

    with pytest.raises(GanError, match=f"applies to --mode sync only: {mode} uploads float32"):
        plan_from_config(mode, config, dataset)
