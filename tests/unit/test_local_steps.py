"""The sync mode's local steps (--local-steps H > 1): the plan's rounds, a unit's H inner steps,
the outer step on the image-weighted mean change, and the bound on an honest change."""

from __future__ import annotations

import pytest
import torch

from ganfriends.config import Config
from ganfriends.models import build_models
from ganfriends.rules import ServerState, Unit, make_rule, plan_from_dict
from ganfriends.rules.local_steps import OuterStep
from ganfriends.rules.sync import SyncRule
from ganfriends.rules.sync_plan import SyncPlan
from ganfriends.rules.work import UnitStart, Workspace
from ganfriends.schedule import BatchSchedule
from ganfriends.step import MicroBatch, make_optimizers, train_step
from tests.unit.test_rules import CPU, MODEL, Labelled, constant_result, settings

FEDAVG = OuterStep()  # sgd, lr 1, no momentum


def local_plan(
    steps: int = 7,
    local_steps: int = 3,
    outer_g: OuterStep = FEDAVG,
    outer_d: OuterStep = FEDAVG,
    local_state: str = "reset",
) -> SyncPlan:
    """Units of 40 images, 2 per step (batches of 80 of 400 images), ``steps`` steps."""
    return SyncPlan(
        400, 5, 40, 2, 20, 10, max_updates=steps, update_rule="alternating",
        local_steps=local_steps, local_state=local_state, outer_g=outer_g, outer_d=outer_d,
    )  # fmt: skip


def sync_rule(plan: SyncPlan) -> SyncRule:
    rule = make_rule("sync", plan, Config(), MODEL)
    assert isinstance(rule, SyncRule)
    return rule


def test_a_round_is_one_version_whose_units_cover_h_consecutive_steps() -> None:
    plan = local_plan(steps=7, local_steps=3)
    [first, second] = plan.units_of_update(1)
    assert plan.unit_steps(first) == range(3, 6)
    assert plan.unit_steps(second) == range(3, 6)
    schedule = BatchSchedule(400, 80, 5)
    assert plan.unit_images(second, 4) == schedule.images(4, slice(40, 80))


def test_the_last_round_takes_the_steps_left_and_then_the_run_ends() -> None:
    plan = local_plan(steps=7, local_steps=3)
    assert plan.total_versions == 3
    assert plan.unit_steps(plan.units_of_update(2)[0]) == range(6, 7)
    assert plan.units_of_update(3) == []
    assert plan.epochs_done(3) == 7 / plan.schedule.steps_per_epoch


def test_a_stored_plan_without_local_steps_is_the_exact_synchronous_step() -> None:
    stored = local_plan(local_steps=1).to_dict()
    for key in ("local_steps", "outer_g", "outer_d"):
        del stored[key]
    plan = plan_from_dict("sync", stored)
    assert isinstance(plan, SyncPlan)
    assert plan.local_steps == 1 and not plan.local
    assert plan.outer_g == OuterStep() and plan.outer_d == OuterStep()


def test_a_local_plan_survives_its_stored_form_with_each_networks_outer_step() -> None:
    plan = local_plan(outer_g=OuterStep("nesterov", 0.7), outer_d=OuterStep("sgd", 0.5, 0.2))
    assert plan_from_dict("sync", plan.to_dict()) == plan


def test_the_config_gives_d_its_own_outer_step_only_where_asked() -> None:
    config = settings(
        1,
        coordinator={"local_steps": 4, "outer_optimizer": "nesterov", "outer_lr": 0.7,
                     "outer_lr_d": 0.3, "images_per_work_unit": 40},
        training={"micro_batch": 20},
    )  # fmt: skip
    plan = SyncPlan.from_config(config, Labelled())
    assert plan.outer_g == OuterStep("nesterov", 0.7, None)
    assert plan.outer_d == OuterStep("nesterov", 0.3, None)
    assert plan.outer_d.effective_momentum == 0.9  # DiLoCo's, when none is given


def outer_server(rule: SyncRule) -> ServerState:
    g, d = build_models(MODEL, seed=0)
    return ServerState(g, d, *rule.server_optimizers(g, d))


def test_sgd_lr_1_sets_the_weights_to_the_image_weighted_mean_of_the_units() -> None:
    rule = sync_rule(local_plan())
    server = outer_server(rule)
    before = [p.detach().clone() for p in server.generator.parameters()]
    results = [constant_result(server, 0.1, 100), constant_result(server, 0.4, 300)]

    rule.combine(server, [Unit(0), Unit(1)], results)

    # (0.1 * 100 + 0.4 * 300) / 400: FedAvg of the units' end weights, by images.
    for p, p0 in zip(server.generator.parameters(), before, strict=True):
        torch.testing.assert_close(p, p0 + 0.325)


def test_d_takes_its_own_outer_learning_rate() -> None:
    rule = sync_rule(local_plan(outer_d=OuterStep("sgd", 0.5)))
    server = outer_server(rule)
    g0 = [p.detach().clone() for p in server.generator.parameters()]
    d0 = [p.detach().clone() for p in server.discriminator.parameters()]

    rule.combine(server, [Unit(0)], [constant_result(server, 0.2, 10)])

    for p, p0 in zip(server.generator.parameters(), g0, strict=True):
        torch.testing.assert_close(p, p0 + 0.2)
    for p, p0 in zip(server.discriminator.parameters(), d0, strict=True):
        torch.testing.assert_close(p, p0 + 0.1)


def test_a_unit_is_the_change_of_h_steps_with_a_fresh_adam_on_its_rows() -> None:
    plan = local_plan(local_steps=3)
    rule, dataset = sync_rule(plan), Labelled()
    unit = plan.units_of_update(1)[1]
    g, d = build_models(MODEL, seed=0)
    result = rule.compute(Workspace(g, d, dataset, CPU), Unit(unit))

    g2, d2 = build_models(MODEL, seed=0)
    start = {n: p.detach().clone() for n, p in g2.named_parameters()}
    opt_g, opt_d = make_optimizers(g2, d2, 2e-4, (0.5, 0.999))
    for step in range(3, 6):
        images, z = plan.unit_images(unit, step), plan.unit_noise(unit, MODEL.latent_dim, step)
        batches = [
            MicroBatch(dataset.get_batch(images[i : i + 20])[0], z[i : i + 20]) for i in (0, 20)
        ]
        train_step(g2, d2, rule.loss, batches, "alternating", optimizer_g=opt_g, optimizer_d=opt_d)

    assert result.stats.images == 120
    for name, p in g2.named_parameters():
        torch.testing.assert_close(result.parameters["g." + name], p.detach() - start[name])


def test_an_honest_change_passes_and_one_beyond_h_adam_steps_is_refused() -> None:
    rule = sync_rule(local_plan(local_steps=3))
    g, d = build_models(MODEL, seed=0)
    unit = Unit(rule.plan.units_of_update(0)[0])
    honest = rule.compute(Workspace(g, d, Labelled(), CPU), unit)
    assert rule.check_result(unit, honest, None) is None

    name = sorted(honest.parameters)[0]
    honest.parameters[name] = honest.parameters[name] + 0.1  # 3 steps of lr 2e-4 move < 0.01

    reason = rule.check_result(unit, honest, None)
    assert reason is not None and f"{name} moved 0.1" in reason and "at most" in reason


def test_a_kept_inner_state_goes_with_its_slot_and_resumes_the_slots_adam() -> None:
    plan = local_plan(local_state="keep")
    rule, dataset = sync_rule(plan), Labelled()
    first = rule.units_of(0)[1]
    again = rule.units_of(1)[1]
    assert first.device == again.device == 1  # slot 1's unit of each round

    g, d = build_models(MODEL, seed=0)
    result = rule.compute(Workspace(g, d, dataset, CPU), first)
    assert result.device_state is not None
    assert float(result.device_state["g.0.step"]) == 3  # three inner steps taken

    carried = rule.compute(Workspace(g, d, dataset, CPU), again, UnitStart(result.device_state))
    assert carried.device_state is not None
    assert float(carried.device_state["g.0.step"]) == 6
    assert rule.check_result(again, carried, result.device_state) is None
    # A state that claims more steps than a round has is not an honest one.
    assert rule.check_result(again, carried, None) is not None


def test_a_reset_inner_state_sends_none_and_units_have_no_device() -> None:
    rule = sync_rule(local_plan())
    assert all(u.device is None for u in rule.units_of(0))
    g, d = build_models(MODEL, seed=0)
    assert rule.device_state_spec(g, d) is None
    assert rule.compute(Workspace(g, d, Labelled(), CPU), rule.units_of(0)[0]).device_state is None


def test_an_exact_step_has_no_a_priori_bound_and_keeps_dcgans_adam() -> None:
    rule = sync_rule(local_plan(local_steps=1))
    server = outer_server(rule)
    assert isinstance(server.optimizer_g, torch.optim.Adam)
    assert rule.check_result(Unit(0), constant_result(server, 50.0, 40), None) is None


@pytest.mark.parametrize(
    ("settings_", "message"),
    [
        ({"optimizer": "rmsprop"}, "unknown outer optimizer"),
        ({"lr": 0.0}, "positive"),
        ({"momentum": 1.0}, r"\[0, 1\)"),
    ],
)
def test_an_outer_step_refuses_settings_it_cannot_run(
    settings_: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        OuterStep.from_dict(settings_)
