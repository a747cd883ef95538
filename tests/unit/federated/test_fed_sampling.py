"""Which clients train in a round: counts, random and balanced sampling, weak devices."""

from __future__ import annotations

import numpy as np
import pytest

from ganfriends.federated import (
    BalancedSampler,
    members_per_round,
    random_members,
    round_members,
    weak_devices,
)

# Balanced-sampling example: 4 clients, 3 classes (row 0, the server device, is never chosen).
HIST = np.array(
    [
        [5, 5, 5],  # device 0
        [2, 0, 0],  # client 1
        [0, 3, 1],  # client 2
        [1, 1, 0],  # client 3
        [0, 0, 4],  # client 4
    ]
)
# Queues, holders in descending id: class 0 [3, 1], class 1 [3, 2], class 2 [4, 2]. taken = 0 0 0.
# Round 0, slot 1: min class 0 (first tie); pop 3 (q0 -> [1, 3]), take it: taken = 1 1 0.
#          slot 2: min class 2; pop 4 (q2 -> [2, 4]), take it: taken = 1 1 4.         -> [3, 4]
# Round 1, slot 1: min class 0; pop 1 (q0 -> [3, 1]), take it: taken = 3 1 4.
#          slot 2: min class 1; pop 3 (q1 -> [2, 3]), not in {1}, take it: taken = 4 2 4. -> [1, 3]
# Round 2, slot 1: min class 1; pop 2 (q1 -> [3, 2]), take it: taken = 4 5 5.
#          slot 2: min class 0; pop 3 (q0 -> [1, 3]), take it: taken = 5 6 5.         -> [2, 3]


def test_members_per_round_is_the_ceiling_of_fraction_times_clients() -> None:
    assert members_per_round(41, 0.05) == 3
    assert members_per_round(100, 0.07) == 7  # 0.07 * 100 == 7.000000000000001
    assert members_per_round(10, 0.25) == 3


def test_members_per_round_is_at_least_one_and_at_most_all() -> None:
    assert members_per_round(10, 0.0) == 1
    assert members_per_round(10, 1.0) == 10
    with pytest.raises(ValueError):
        members_per_round(10, 1.5)


def test_random_members_are_distinct_sorted_clients_of_the_right_count() -> None:
    got = random_members(41, 5, seed=3, round_index=17)
    assert len(got) == len(set(got)) == 5
    assert got == sorted(got)
    assert all(1 <= c <= 41 for c in got)


def test_random_members_can_pick_every_client_but_never_the_server() -> None:
    seen = {c for r in range(200) for c in random_members(5, 2, seed=0, round_index=r)}
    assert seen == {1, 2, 3, 4, 5}


def test_random_members_are_deterministic_per_seed_and_round() -> None:
    assert random_members(41, 3, 9, 4) == random_members(41, 3, 9, 4)
    rounds = {tuple(random_members(41, 3, 9, r)) for r in range(10)}
    assert len(rounds) > 1
    seeds = {tuple(random_members(41, 3, s, 4)) for s in range(10)}
    assert len(seeds) > 1


def test_round_members_put_the_server_device_first() -> None:
    assert round_members([7, 2]) == [0, 2, 7]
    with pytest.raises(ValueError):
        round_members([0, 2])


def test_balanced_sampler_reproduces_the_hand_worked_rounds() -> None:
    sampler = BalancedSampler(HIST, group_size=2)
    assert [sampler.members(r) for r in range(3)] == [[3, 4], [1, 3], [2, 3]]


def test_balanced_sampler_answers_do_not_depend_on_the_order_of_questions() -> None:
    in_order = BalancedSampler(HIST, group_size=2)
    asked = [in_order.members(r) for r in range(6)]
    fresh = BalancedSampler(HIST, group_size=2)
    assert fresh.members(5) == asked[5]
    assert fresh.members(2) == asked[2]


def test_balanced_group_comes_out_short_when_the_neediest_class_is_used_up() -> None:
    # Slot 1 takes class 0's only holder (1); slot 2 takes 3 (class 1); slot 3 wants class 0
    # again, whose queue holds only client 1, already in: the slot stays empty.
    hist = np.array([[1, 1], [1, 0], [0, 50], [0, 50]])
    assert BalancedSampler(hist, group_size=3).members(0) == [1, 3]


def test_balanced_sampler_skips_classes_no_client_holds() -> None:
    hist = np.array([[1, 1, 9], [1, 0, 0], [0, 1, 0]])  # class 2 is on the server device only
    assert BalancedSampler(hist, group_size=2).members(0) == [1, 2]


def test_weak_devices_are_every_round_one_over_fraction_th_client_from_one() -> None:
    assert weak_devices(41, 0.1) == frozenset({1, 11, 21, 31, 41})
    assert weak_devices(10, 0.3) == frozenset({1, 4, 7, 10})  # round(3.33) = 3
    assert weak_devices(10, 0.4) == frozenset({1, 3, 5, 7, 9})  # round(2.5) = 2, half to even
    assert weak_devices(10, 0.0) == frozenset()
