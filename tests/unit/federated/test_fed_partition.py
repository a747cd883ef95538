"""Who holds which images: FeGAN's non-iid scheme (seeded) and a disjoint iid split."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ganfriends import rng
from ganfriends.federated import Partition, iid_partition, non_iid_partition

MNIST_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


def mnist_like_labels() -> np.ndarray:
    labels = np.repeat(np.arange(10), MNIST_COUNTS)
    np.random.default_rng(0).shuffle(labels)
    return labels


def small_labels(per_class: int = 50, num_classes: int = 10) -> np.ndarray:
    labels = np.tile(np.arange(num_classes), per_class)
    np.random.default_rng(1).shuffle(labels)
    return labels


def test_classes_per_client_follow_fegan_formula() -> None:
    clients = 400
    labels = small_labels()
    hist = non_iid_partition(labels, clients, magic_num=5, seed=3, num_classes=10).histograms(
        labels, 10
    )
    held = (hist > 0).sum(axis=1)
    assert held[0] == 10
    for r in range(1, clients + 1):
        assert held[r] == min(10, int(r * 200.0 / clients) + 1), r
    assert held[1] == 1 and held[2] == 2 and held[10] == 6


def test_caps_are_drawn_and_replaced_as_in_fegan() -> None:
    # Plenty of images per class, so each count equals its cap. The caps are redrawn here from
    # the documented stream: class set first, then one cap per class, caps > magic replaced.
    clients, magic = 12, 20
    labels = small_labels(per_class=200)
    hist = non_iid_partition(labels, clients, magic_num=magic, seed=7, num_classes=10).histograms(
        labels, 10
    )
    for r in (0, 3, 5, 12):  # r**2 = 9 <= magic, r**2 = 25 and 144 > magic
        gen = np.random.Generator(np.random.PCG64(rng.derive_seed(7, rng.PARTITION, 2, r)))
        k = 10 if r == 0 else min(10, r * 200 // clients + 1)
        chosen = gen.choice(10, size=k, replace=False)
        drawn = gen.integers(1, magic if r == 0 else r * r, size=10, endpoint=True)
        expected = np.zeros(10, dtype=np.int64)
        for c in chosen:
            expected[c] = (
                math.ceil((r + 1) * magic / (clients + 1)) if drawn[c] > magic else drawn[c]
            )
        assert hist[r].tolist() == expected.tolist(), r


def test_class_counts_never_exceed_the_cap_bounds() -> None:
    clients, magic = 60, 30
    labels = small_labels(per_class=100)
    hist = non_iid_partition(labels, clients, magic_num=magic, seed=0, num_classes=10).histograms(
        labels, 10
    )
    assert hist[0].max() <= magic
    for r in range(1, clients + 1):
        assert hist[r].max() <= min(r * r, magic), r


def test_each_device_holds_the_first_images_of_its_classes_so_shards_overlap() -> None:
    labels = small_labels(per_class=40)
    part = non_iid_partition(labels, 20, magic_num=30, seed=2, num_classes=10)
    for shard in part.shards:
        for c in np.unique(labels[shard]):
            of_class = np.flatnonzero(labels == c)
            held = shard[labels[shard] == c]
            assert held.tolist() == of_class[: len(held)].tolist()
    first_of_0 = int(np.flatnonzero(labels == 0)[0])
    holders_of_0 = [s for s in part.shards if np.any(labels[s] == 0)]
    assert len(holders_of_0) > 1
    assert all(first_of_0 in s for s in holders_of_0)


def test_server_device_keeps_the_first_images_up_to_its_limit() -> None:
    labels = small_labels()
    full = non_iid_partition(labels, 5, magic_num=30, seed=4, num_classes=10, server_limit=10**6)
    limited = non_iid_partition(labels, 5, magic_num=30, seed=4, num_classes=10, server_limit=7)
    assert limited.shards[0].tolist() == full.shards[0][:7].tolist()
    assert all(
        np.array_equal(a, b) for a, b in zip(limited.shards[1:], full.shards[1:], strict=True)
    )


def test_same_seed_gives_same_shards_and_another_seed_differs() -> None:
    labels = small_labels()
    a = non_iid_partition(labels, 15, magic_num=30, seed=11, num_classes=10)
    b = non_iid_partition(labels, 15, magic_num=30, seed=11, num_classes=10)
    c = non_iid_partition(labels, 15, magic_num=30, seed=12, num_classes=10)
    assert all(np.array_equal(x, y) for x, y in zip(a.shards, b.shards, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a.shards, c.shards, strict=True))


def test_a_device_shard_does_not_depend_on_the_other_devices() -> None:
    labels = small_labels()
    fewer = non_iid_partition(labels, 15, magic_num=30, seed=5, num_classes=10)
    # Device 0's draws use only (seed, device): a different N leaves it unchanged.
    more = non_iid_partition(labels, 30, magic_num=30, seed=5, num_classes=10)
    assert np.array_equal(fewer.shards[0], more.shards[0])


def test_readme_setting_gives_valid_non_empty_shards_of_plausible_sizes() -> None:
    labels = mnist_like_labels()
    part = non_iid_partition(labels, 41, magic_num=3000, seed=1, num_classes=10)
    sizes = part.sizes()
    assert part.num_devices == 42
    for shard in part.shards:
        assert shard.dtype == np.int64
        assert shard.min() >= 0 and shard.max() < len(labels)
        assert np.all(np.diff(shard) > 0)  # ascending, no repeats
    assert sizes[0] <= 7_500
    assert sizes.min() == 5  # client 1: 5 classes, caps U[1, 1] = 1 each
    assert sizes[1] == 5
    assert 1_000 <= np.median(sizes) <= 4_000  # FeGAN's own draw: median 2,349
    assert 5_000 <= sizes.max() <= 15_000  # FeGAN's own draw: 10,219


def test_a_device_whose_classes_are_all_absent_raises_instead_of_holding_nothing() -> None:
    labels = np.zeros(20, dtype=np.int64)  # class 1 never occurs
    raised = 0
    for seed in range(20):
        try:
            part = non_iid_partition(labels, 400, magic_num=5, seed=seed, num_classes=2)
        except ValueError as err:
            assert "no image" in str(err)
            raised += 1
        else:
            assert part.sizes().min() >= 1
    assert raised > 0


def test_invalid_labels_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"\[0, 10\)"):
        non_iid_partition(np.array([0, 10]), 3, magic_num=5, seed=0, num_classes=10)


def test_iid_shards_are_disjoint_covering_and_equal_within_one() -> None:
    part = iid_partition(1003, 9, seed=0)
    assert part.num_devices == 10
    together = np.concatenate(part.shards)
    assert sorted(together.tolist()) == list(range(1003))
    assert part.sizes().tolist() == [101, 101, 101, 100, 100, 100, 100, 100, 100, 100]


def test_iid_partition_is_deterministic_per_seed() -> None:
    a, b, c = iid_partition(100, 4, seed=1), iid_partition(100, 4, seed=1), iid_partition(100, 4, 2)
    assert all(np.array_equal(x, y) for x, y in zip(a.shards, b.shards, strict=True))
    assert not np.array_equal(a.shards[0], c.shards[0])


def test_iid_partition_needs_an_image_per_device() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        iid_partition(3, 3, seed=0)


def test_partition_helpers_count_sizes_and_classes() -> None:
    part = Partition((np.array([0, 2]), np.array([1, 2, 3])))
    labels = np.array([0, 1, 1, 2])
    assert part.sizes().tolist() == [2, 3]
    assert part.histograms(labels, 3).tolist() == [[1, 1, 0], [0, 2, 1]]
    with pytest.raises(ValueError):
        part.shards[0][0] = 5
