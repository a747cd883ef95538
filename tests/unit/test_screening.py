"""Screening a version's results: one vote per student, a reference of votes and recent versions,
clipping, near-zero refusals, buffers, Adam's exact bounds, free-riders, non-finite state."""

from __future__ import annotations

import math

import pytest
import torch

from ganfriends.aggregate import (
    MAX_FORWARDS,
    group_norms,
    lower_median,
    norm_scales,
    scale_groups,
)
from ganfriends.models import ModelConfig, build_models
from ganfriends.rules.base import ServerState, UnitResult
from ganfriends.rules.screening import (
    BUFFER_FACTOR,
    HISTORY_VERSIONS,
    adam_state_problem,
    adam_step_bound,
    clip_results,
    copies_differ,
    first_non_finite,
    is_all_zero,
    move_problem,
    screen,
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


# ------------------------------------------------------------------ one vote per student, history


def test_a_student_holding_every_unit_sets_the_bound_only_without_history() -> None:
    honest_history = [{"g": math.sqrt(2), "d": 1.0}] * 3
    attack = [result(1e4, 1.0), result(1e4, 1.0)]  # both units of a 2-unit round, one student

    alone = screen(attack, ["mallory", "mallory"], [], factor=3.0)
    with_history = screen(attack, ["mallory", "mallory"], honest_history, factor=3.0)

    assert alone.clipped == []  # version 0: its own vote is the reference (the claim side's job)
    assert [(c.index, c.group) for c in with_history.clipped] == [(0, "g"), (1, "g")]
    for r in with_history.results:  # 3x the history's reference
        assert group_norms(r.parameters)["g"] == pytest.approx(3 * math.sqrt(2))


def test_several_units_of_one_student_are_one_vote() -> None:
    # Three units of one student against two honest students: one vote of three, the median
    # is honest, and all three of the student's units are clipped.
    results = [result(1.0, 1.0), result(1.1, 1.0), *(result(1e4, 1.0) for _ in range(3))]
    students = ["alice", "bob", "mallory", "mallory", "mallory"]

    screening = screen(results, students, [], factor=3.0)

    assert sorted(c.index for c in screening.clipped) == [2, 3, 4]
    assert screening.reference["g"] == pytest.approx(1.1 * math.sqrt(2))


def test_a_student_alone_cannot_raise_the_recorded_reference() -> None:
    history: list[dict[str, float]] = [{"g": 1.0, "d": 1.0}] * 8
    for _ in range(20):  # a student alone in every round, sending the largest upload allowed
        screening = screen([result(1e4, 1e4)], ["mallory"], history, factor=3.0)
        history = [*history[1:], screening.reference]
    assert max(h["g"] for h in history) == pytest.approx(1.0)
    assert group_norms(screening.results[0].parameters)["g"] == pytest.approx(3.0)


def test_honest_norms_that_grow_are_followed_without_clipping() -> None:
    history: list[dict[str, float]] = []
    for version in range(40):  # 10% growth a version, two students a round
        size = 1.1**version
        results = [result(size, size), result(1.2 * size, size)]
        screening = screen(results, ["alice", "bob"], history, factor=3.0)
        assert screening.clipped == [] and screening.refused == []
        assert all(a is b for a, b in zip(screening.results, results, strict=True))
        history = [*history, screening.reference][-HISTORY_VERSIONS:]


def test_a_near_zero_result_is_refused_but_absent_groups_are_not_zero() -> None:
    lazy = UnitResult(
        {"g.a": torch.tensor([1e-20, 0.0]), "g.b": torch.zeros(2), "d.a": torch.zeros(1)},
        {}, StepStats(images=8),
    )  # fmt: skip
    d_phase = UnitResult({"d.a": torch.tensor([1.0])}, {}, StepStats(images=8))
    results = [result(1.0, 1.0), result(1.0, 1.0), lazy]

    screening = screen(results, ["a", "b", "c"], [], factor=3.0)

    assert [r.index for r in screening.refused] == [2] and "no work" in screening.refused[0].reason
    assert screening.accepted == [0, 1]
    assert screen([d_phase, d_phase], ["a", "b"], [{"g": 1.0}], factor=3.0).refused == []


def test_beside_one_honest_student_a_huge_result_never_makes_the_honest_one_look_idle() -> None:
    # Version 0, no history, two students: the honest result is judged by no single other vote.
    screening = screen([result(1.0, 1.0), result(1e4, 1e4)], ["honest", "cheat"], [], 3.0)

    assert screening.refused == []
    assert {c.index for c in screening.clipped} == {1}


def test_beside_one_honest_student_a_free_rider_is_refused_by_the_absolute_floor() -> None:
    lazy = UnitResult(
        {"g.a": torch.tensor([1e-20, 0.0]), "g.b": torch.zeros(2), "d.a": torch.zeros(1)},
        {}, StepStats(images=8),
    )  # fmt: skip

    screening = screen([result(1.0, 1.0), lazy], ["honest", "cheat"], [], 3.0)

    assert [r.index for r in screening.refused] == [1]
    assert screening.clipped == []  # the free-rider did not set the honest one's bound


def test_a_free_rider_is_judged_by_the_other_students_not_by_its_own_vote() -> None:
    small = result(1e-5, 1e-5)  # above the absolute floor, far below the others
    results = [result(1.0, 1.0), result(1.2, 1.2), small, small]

    screening = screen(results, ["a", "b", "cheat", "cheat"], [], 3.0)

    assert [r.index for r in screening.refused] == [2, 3]


def test_buffer_changes_are_clipped_towards_the_published_buffers() -> None:
    published = {"dbuf.bn.running_var": torch.ones(4), "dbuf.bn.num_batches_tracked":
                 torch.tensor(10)}  # fmt: skip

    def with_buffers(var: float, tracked: int) -> UnitResult:
        buffers = {"dbuf.bn.running_var": torch.full((4,), var),
                   "dbuf.bn.num_batches_tracked": torch.tensor(tracked)}  # fmt: skip
        return UnitResult({"d.a": torch.tensor([1.0])}, buffers, StepStats(images=8))

    results = [with_buffers(1.1, 12), with_buffers(0.9, 12), with_buffers(1e6, 2**62)]

    screening = screen(results, ["a", "b", "c"], [], 3.0, published=published)

    assert [(c.index, c.group) for c in screening.clipped] == [(2, "dbuf~")]
    var = screening.results[2].buffers["dbuf.bn.running_var"]
    torch.testing.assert_close(var, torch.full((4,), 1.0 + BUFFER_FACTOR * 0.1))  # > 0
    assert int(screening.results[2].buffers["dbuf.bn.num_batches_tracked"]) <= 10 + MAX_FORWARDS
    assert screening.results[0] is results[0] and screening.results[1] is results[1]


# ------------------------------------------------------------------ Adam's exact bounds


def test_adam_moments_of_any_gradients_stay_within_the_invariant() -> None:
    betas = (0.5, 0.999)
    gen = torch.Generator().manual_seed(0)
    p = torch.zeros(1000, requires_grad=True)
    adam = torch.optim.Adam([p], lr=1e-3, betas=betas)
    for step in range(200):  # growing, shrinking, constant, sign-flipping gradients
        scale = torch.randn(1000, generator=gen) * 10 ** (step % 7 - 3)
        p.grad = scale * (1.05**step) * (1 if step % 3 else -1)
        adam.step()
        state = adam.state[p]
        moments = {"0.exp_avg": state["exp_avg"], "0.exp_avg_sq": state["exp_avg_sq"]}
        assert adam_state_problem(moments, betas) is None, step


def test_an_adam_state_no_gradient_gives_is_refused() -> None:
    state = {"0.exp_avg": torch.tensor([1e6]), "0.exp_avg_sq": torch.tensor([1e-12])}
    reason = adam_state_problem(state, (0.5, 0.999))
    assert reason is not None and "exceeds" in reason


def test_one_adam_step_moves_no_coordinate_beyond_the_step_bound() -> None:
    betas = (0.5, 0.999)
    bound = adam_step_bound(betas)
    gen = torch.Generator().manual_seed(1)
    p = torch.zeros(1000, requires_grad=True)
    adam = torch.optim.Adam([p], lr=1.0, betas=betas)
    for step in range(300):
        before = p.detach().clone()
        p.grad = torch.randn(1000, generator=gen) * (1.1 ** (step % 50)) + 0.5
        adam.step()
        assert float((p.detach() - before).abs().max()) <= bound
    assert move_problem({"w": torch.tensor([0.5])}, {"w": torch.tensor([0.0])}, 0.1) is not None
