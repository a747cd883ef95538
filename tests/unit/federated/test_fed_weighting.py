"""KL entropies and member weights, pinned to values worked out by hand below."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ganfriends.federated import WEIGHTINGS, kl_entropies, member_weights

# Three devices, three classes. n = (4, 4, 8), N_total = 16, column sums (6, 4, 6), so
# q = (6/16, 4/16, 6/16) = (0.375, 0.25, 0.375).
HIST = np.array([[2, 1, 1], [0, 3, 1], [4, 0, 4]])
SIZES = np.array([4, 4, 8])
# p0 = (0.5, 0.25, 0.25); p1 = (0, 0.75, 0.25), its 0 term dropped; p2 = (0.5, 0, 0.5).
KL0 = 0.5 * math.log(0.5 / 0.375) + 0.25 * math.log(0.25 / 0.25) + 0.25 * math.log(0.25 / 0.375)
KL1 = 0.75 * math.log(0.75 / 0.25) + 0.25 * math.log(0.25 / 0.375)
KL2 = 0.5 * math.log(0.5 / 0.375) + 0.5 * math.log(0.5 / 0.375)
E0, E1, E2 = KL0 * 4 / 16, KL1 * 4 / 16, KL2 * 8 / 16
ENTROPIES = np.array([E0, E1, E2])


def test_kl_entropies_match_hand_computed_values() -> None:
    got = kl_entropies(HIST)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, [E0, E1, E2], rtol=0, atol=1e-12)


def test_kl_entropies_with_a_reference_use_its_distribution_and_total() -> None:
    # FeGAN's mode: q and N from the whole dataset's class counts (2, 2, 4): q = (.25, .25, .5).
    got = kl_entropies(HIST, reference=[2, 2, 4])
    ref0 = 0.5 * math.log(0.5 / 0.25) + 0.25 * math.log(0.25 / 0.25) + 0.25 * math.log(0.25 / 0.5)
    ref1 = 0.75 * math.log(0.75 / 0.25) + 0.25 * math.log(0.25 / 0.5)
    ref2 = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.5)
    np.testing.assert_allclose(got, [ref0 * 4 / 8, ref1 * 4 / 8, ref2 * 8 / 8], rtol=0, atol=1e-12)


def test_kl_entropy_is_zero_for_devices_matching_the_global_distribution() -> None:
    assert kl_entropies(np.array([[1, 2], [2, 4], [3, 6]])).tolist() == [0.0, 0.0, 0.0]


def test_reference_zero_where_a_device_holds_images_is_rejected() -> None:
    with pytest.raises(ValueError, match="inf"):
        kl_entropies(HIST, reference=[2, 0, 4])


def test_a_device_without_images_is_rejected() -> None:
    with pytest.raises(ValueError, match="no image"):
        kl_entropies(np.array([[1, 2], [0, 0]]))


def test_fedavg_weights_are_member_sizes_over_their_sum_in_member_order() -> None:
    got = member_weights("fedavg", [2, 0], SIZES, None)
    np.testing.assert_allclose(got, [8 / 12, 4 / 12], rtol=0, atol=1e-12)


def test_uniform_weights_are_one_over_member_count() -> None:
    got = member_weights("uniform", [0, 1, 2], SIZES, None)
    np.testing.assert_allclose(got, [1 / 3, 1 / 3, 1 / 3], rtol=0, atol=1e-12)


def test_kl_exp_weights_are_normalised_exponentials_over_members() -> None:
    got = member_weights("kl-exp", [0, 2], SIZES, ENTROPIES)
    total = math.exp(E0) + math.exp(E2)
    np.testing.assert_allclose(got, [math.exp(E0) / total, math.exp(E2) / total], atol=1e-12)


def test_kl_linear_weights_are_normalised_entropies_over_members() -> None:
    got = member_weights("kl-linear", [0, 1, 2], SIZES, ENTROPIES)
    total = E0 + E1 + E2
    np.testing.assert_allclose(got, [E0 / total, E1 / total, E2 / total], rtol=0, atol=1e-12)


def test_kl_linear_falls_back_to_uniform_when_all_entropies_are_zero() -> None:
    got = member_weights("kl-linear", [0, 1], SIZES[:2], np.zeros(2))
    assert got.tolist() == [0.5, 0.5]


def test_kl_dirac_keeps_only_the_weight_above_one_half() -> None:
    # Linear weights: E1 / (E0 + E1 + E2) ~ 0.539 is the only one >= 0.5.
    assert E1 / (E0 + E1 + E2) >= 0.5 > max(E0, E2) / (E0 + E1 + E2)
    got = member_weights("kl-dirac", [0, 1, 2], SIZES, ENTROPIES)
    assert got.tolist() == [0.0, 1.0, 0.0]


def test_kl_dirac_threshold_is_inclusive() -> None:
    # Linear weights 1/4, 1/4, 2/4: exactly 0.5 is kept.
    got = member_weights("kl-dirac", [0, 1, 2], SIZES, np.array([1.0, 1.0, 2.0]))
    assert got.tolist() == [0.0, 0.0, 1.0]


def test_kl_dirac_falls_back_to_linear_when_no_weight_reaches_one_half() -> None:
    got = member_weights("kl-dirac", [0, 1, 2], SIZES, np.array([1.0, 2.0, 2.0]))
    np.testing.assert_allclose(got, [0.2, 0.4, 0.4], rtol=0, atol=1e-12)


@pytest.mark.parametrize("scheme", WEIGHTINGS)
def test_every_scheme_sums_to_one(scheme: str) -> None:
    got = member_weights(scheme, [1, 2], SIZES, ENTROPIES)
    assert got.shape == (2,)
    assert math.isclose(float(got.sum()), 1.0, abs_tol=1e-12)


def test_unknown_scheme_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown weighting 'kl-cubic'"):
        member_weights("kl-cubic", [0], SIZES, ENTROPIES)


def test_kl_scheme_without_entropies_is_rejected() -> None:
    with pytest.raises(ValueError, match="needs the devices' KL entropies"):
        member_weights("kl-exp", [0, 1], SIZES, None)


def test_duplicate_or_out_of_range_members_are_rejected() -> None:
    with pytest.raises(ValueError, match="duplicates"):
        member_weights("uniform", [1, 1], SIZES, None)
    with pytest.raises(ValueError, match="device ids"):
        member_weights("uniform", [3], SIZES, None)
