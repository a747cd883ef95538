"""MD-GAN's rule: G's gradient from the devices' feedback, the schedule, swaps and unit work."""

from __future__ import annotations

import pytest
import torch

from ganfriends.config import Config
from ganfriends.errors import GanError
from ganfriends.losses import make_loss
from ganfriends.models import ModelConfig, build_models
from ganfriends.rules import ServerState, make_rule, plan_from_dict
from ganfriends.rules.mdgan import WEIGHTS, MdganPlan, MdganRule
from ganfriends.rules.work import UnitStart, Workspace
from ganfriends.step import frozen
from tests.unit.test_rules import Labelled, settings

MODEL = ModelConfig(image_size=32, channels=1, latent_dim=8, g_features=4, d_features=4)
CPU = torch.device("cpu")


def config(**mdgan: object) -> Config:
    devices = {"devices": 3, "batch_size": 4}
    return settings(2, federated=devices, mdgan={"iterations": 6, "disc_steps": 2} | mdgan)


def mdgan_rule(**mdgan: object) -> MdganRule:
    cfg, dataset = config(**mdgan), Labelled(n=120)
    rule = make_rule("md-gan", MdganPlan.from_config(cfg, dataset), cfg, MODEL)
    assert isinstance(rule, MdganRule)
    return rule


def sgd_server() -> ServerState:
    g, d = build_models(MODEL, seed=0)
    return ServerState(
        g, d, torch.optim.SGD(g.parameters(), lr=1.0), torch.optim.SGD(d.parameters(), lr=0.0)
    )


def test_g_gradient_from_feedback_equals_the_mean_device_loss_gradient_in_one_process() -> None:
    # Prepare: three devices (k = 2: devices 0 and 2 share X_1) computed on iteration 0.
    rule, dataset = mdgan_rule(), Labelled(n=120)
    server = sgd_server()
    reference = {k: v.detach().clone() for k, v in server.generator.state_dict().items()}
    inputs = rule.inputs_of(server, 0)
    units = rule.units_of(0)
    results = []
    for unit in units:
        g, d = build_models(MODEL)
        results.append(rule.compute(Workspace(g, d, dataset, CPU), unit, UnitStart(None, inputs)))
    before = [p.detach().clone() for p in server.generator.parameters()]

    # Execute: the coordinator's VJP and an SGD step of lr 1 (new = old - gradient).
    rule.combine(server, units, results)

    # Reference: (1/N) sum_n L_G(D_n(G(z_g(n)))) back-propagated through G in one graph.
    g_ref, _ = build_models(MODEL)
    g_ref.load_state_dict(reference)
    loss = make_loss("bce")
    total = torch.zeros(())
    for unit, result in zip(units, results, strict=True):
        assert unit.device is not None and result.device_state is not None
        _, d_n = build_models(MODEL)
        d_n.load_state_dict(
            {k[len(WEIGHTS) :]: v for k, v in result.device_state.items() if k.startswith(WEIGHTS)}
        )
        noise = rule._noise(0, rule.generated_batch(unit.device))
        with frozen(d_n):
            total = total + loss.generator(d_n(g_ref(noise)))
    torch.autograd.backward(total / len(units))
    for p, p0, p_ref in zip(server.generator.parameters(), before, g_ref.parameters(), strict=True):
        assert p_ref.grad is not None
        torch.testing.assert_close(p0 - p, p_ref.grad, atol=1e-6, rtol=1e-5)


def test_every_device_trains_every_iteration_with_encoded_indices() -> None:
    rule = mdgan_rule()
    units = rule.units_of(4)
    assert [(u.index, u.device) for u in units] == [(12, 0), (13, 1), (14, 2)]
    assert rule.units_of(6) == []


def test_k_defaults_to_ceil_log2_of_the_devices() -> None:
    cfg = config()
    cfg.federated.devices = 10
    assert MdganPlan.from_config(cfg, Labelled(n=400)).k == 4


def test_each_device_reads_two_distinct_generated_batches() -> None:
    rule = mdgan_rule()
    assert [rule.inputs_needed(u) for u in rule.units_of(0)] == [
        ("x.0", "x.1"),
        ("x.1", "x.0"),
        ("x.0", "x.1"),
    ]


def test_swaps_come_every_e_local_epochs_as_a_seeded_permutation() -> None:
    rule = mdgan_rule(swap_epochs=1)
    interval = rule.plan.swap_interval  # 40 images a device, b 4: every 10 iterations
    assert interval == 10
    assert rule.device_moves(interval - 1) is None and rule.device_moves(0) is None
    moves = rule.device_moves(interval)
    assert moves is not None and sorted(moves) == [0, 1, 2]
    assert moves == rule.device_moves(interval)


def test_device_state_carries_the_discriminator_and_its_adam_across_iterations() -> None:
    rule, dataset = mdgan_rule(), Labelled(n=120)
    server = sgd_server()
    unit = rule.units_of(0)[1]
    g, d = build_models(MODEL)
    first = rule.compute(
        Workspace(g, d, dataset, CPU), unit, UnitStart(None, rule.inputs_of(server, 0))
    )
    assert first.device_state is not None and float(first.device_state["d.0.step"]) == 2.0

    g, fresh = build_models(MODEL)
    second = rule.compute(
        Workspace(g, fresh, dataset, CPU),
        rule.units_of(1)[1],
        UnitStart(first.device_state, rule.inputs_of(server, 1)),
    )

    assert second.device_state is not None and float(second.device_state["d.0.step"]) == 4.0


def test_real_batches_walk_a_device_s_shard_without_repeats_in_a_pass() -> None:
    rule = mdgan_rule()
    shard = set(rule.partition.shards[1].tolist())  # 40 images: 10 batches of 4 a pass
    seen = [i for version in range(10) for i in rule.real_batch(version, 1)]
    assert set(seen) == shard and len(seen) == len(shard)


def test_md_gan_refuses_the_non_iid_split() -> None:
    cfg = config()
    cfg.federated.non_iid = True
    with pytest.raises(GanError, match="iid"):
        MdganPlan.from_config(cfg, Labelled(n=120))


def test_md_gan_plan_survives_its_stored_form() -> None:
    plan = MdganPlan.from_config(config(), Labelled(n=120))
    assert plan_from_dict("md-gan", plan.to_dict()) == plan
