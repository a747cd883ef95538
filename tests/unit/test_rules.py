"""The rule contract: each rule's combine of hand-made results, its schedule and its unit work."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pytest
import torch

from ganfriends.config import Config, load_config
from ganfriends.data import DatasetFingerprint, ImageDataset
from ganfriends.errors import GanError
from ganfriends.losses import NonSaturatingBCE
from ganfriends.models import ModelConfig, build_models
from ganfriends.rules import ServerState, SyncPlan, Unit, make_rule, plan_from_dict
from ganfriends.rules.base import UnitResult
from ganfriends.rules.federated import FederatedPlan, FederatedRule
from ganfriends.rules.work import UnitStart, Workspace
from ganfriends.schedule import BatchSchedule, micro_slices
from ganfriends.step import MicroBatch, StepStats, make_optimizers, train_step

MODEL = ModelConfig(image_size=32, channels=1, latent_dim=8, g_features=4, d_features=4)
CPU = torch.device("cpu")


class Labelled(ImageDataset):
    """``n`` fixed random images, labels 0..9 in turn (or none)."""

    name, channels, image_size, in_memory = "labelled", 1, 32, True

    def __init__(self, n: int = 400, *, labelled: bool = True) -> None:
        gen = torch.Generator().manual_seed(0)
        self.images = torch.rand(n, 1, 32, 32, generator=gen) * 2 - 1
        self._labels = np.arange(n, dtype=np.int64) % 10 if labelled else None

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.images[index]

    def get_batch(self, indices: Sequence[int]) -> tuple[torch.Tensor, int]:
        return self.images[list(indices)], 0

    def fingerprint(self) -> DatasetFingerprint:
        return DatasetFingerprint("labelled", len(self), 32, 1, "0" * 64)

    def labels(self) -> np.ndarray | None:
        return self._labels

    def num_classes(self) -> int | None:
        return None if self._labels is None else 10


def settings(seed: int, **sections: Mapping[str, object]) -> Config:
    """A config read as the loader reads any source (``settings(3, federated={"rounds": 5})``),
    with no config file or environment."""
    overrides = {
        f"{name}.{key}": v for name, values in sections.items() for key, v in values.items()
    }
    return load_config(overrides={"training.seed": seed, **overrides}, env={}, default_file=None)


def federated_config(**federated: object) -> Config:
    shards = {"devices": 4, "fraction": 0.5, "local_steps": 3, "batch_size": 8, "rounds": 5}
    return settings(3, federated=shards | federated)


def federated_rule(dataset: ImageDataset | None = None, **federated: object) -> FederatedRule:
    dataset = dataset or Labelled()
    config = federated_config(**federated)
    plan = FederatedPlan.from_config(config, dataset)
    rule = make_rule("federated", plan, config, MODEL, dataset)
    assert isinstance(rule, FederatedRule)
    return rule


def sgd_server(lr: float = 1.0) -> ServerState:
    g, d = build_models(MODEL, seed=0)
    return ServerState(
        g, d, torch.optim.SGD(g.parameters(), lr=lr), torch.optim.SGD(d.parameters(), lr=lr)
    )


def constant_result(server: ServerState, value: float, images: int) -> UnitResult:
    """Every parameter tensor ``value``; buffers those of the server's networks, shifted."""
    parameters = {
        prefix + n: torch.full_like(p, value)
        for prefix, m in (("g.", server.generator), ("d.", server.discriminator))
        for n, p in m.named_parameters()
    }
    buffers = {
        prefix + n: (b + value if b.is_floating_point() else b.clone())
        for prefix, m in (("gbuf.", server.generator), ("dbuf.", server.discriminator))
        for n, b in m.named_buffers()
    }
    return UnitResult(parameters, buffers, StepStats(images=images))


# ------------------------------------------------------------------------------------ sync


def test_sync_combine_steps_by_the_image_weighted_mean_gradient() -> None:
    plan = SyncPlan(400, 0, 100, 2, 50, 1, update_rule="simultaneous")
    rule = make_rule("sync", plan, Config(), MODEL)
    server = sgd_server(lr=0.5)
    before = [p.detach().clone() for p in server.generator.parameters()]
    results = [constant_result(server, 1.0, 100), constant_result(server, 4.0, 300)]

    rule.combine(server, [Unit(0), Unit(1)], results)

    # mean gradient (1*100 + 4*300) / 400 = 3.25; SGD lr 0.5 moves every weight by -1.625.
    for p, p0 in zip(server.generator.parameters(), before, strict=True):
        torch.testing.assert_close(p, p0 - 1.625)


def test_sync_plan_survives_its_stored_form() -> None:
    plan = SyncPlan(640, 7, 64, 3, 32, 2, max_updates=5, update_rule="alternating")
    assert plan_from_dict("sync", plan.to_dict()) == plan


def run_sync_units(rule_name: str, steps: int) -> ServerState:
    """A sync run of 2 units of 48 images per step (micro-batch 16), units computed one by one
    on fresh copies of the published networks, as workers would."""
    config = Config()
    config.training.update_rule = rule_name
    plan = SyncPlan(400, 5, 48, 2, 16, 1, max_updates=steps, update_rule=rule_name)
    rule = make_rule("sync", plan, config, MODEL)
    g, d = build_models(MODEL, seed=0)
    server = ServerState(g, d, *rule.server_optimizers(g, d))
    dataset = Labelled()
    for version in range(plan.total_versions):
        units = rule.units_of(version)
        results = []
        for unit in units:
            wg, wd = build_models(MODEL, seed=99)
            wg.load_state_dict(g.state_dict())
            wd.load_state_dict(d.state_dict())
            results.append(rule.compute(Workspace(wg, wd, dataset, CPU), unit))
        assert set(results[0].parameters) | set(results[0].buffers) == set(
            rule.result_spec(g, d, version).shapes
        )
        rule.combine(server, units, results)
    return server


def run_local_steps(rule_name: str, steps: int) -> ServerState:
    """The same schedule in one process: the shared step over micro-batches of 16 of each
    96-image batch, with the optimizers stepping in place."""
    g, d = build_models(MODEL, seed=0)
    opt_g, opt_d = make_optimizers(g, d, 2e-4, (0.5, 0.999))
    schedule = BatchSchedule(400, 96, seed=5)
    dataset = Labelled()
    for step in range(steps):
        real, _ = dataset.get_batch(schedule.images(step))
        z = schedule.noise(step, MODEL.latent_dim)
        batches = [MicroBatch(real[s], z[s]) for s in micro_slices(0, 96, 16)]
        train_step(g, d, NonSaturatingBCE(), batches, rule_name, optimizer_g=opt_g,
                   optimizer_d=opt_d)  # fmt: skip
    return ServerState(g, d, opt_g, opt_d)


@pytest.mark.parametrize("rule_name", ["alternating", "simultaneous"])
def test_sync_units_combined_equal_one_process_taking_the_same_steps(rule_name: str) -> None:
    distributed = run_sync_units(rule_name, steps=3)
    local = run_local_steps(rule_name, steps=3)
    for net in ("generator", "discriminator"):
        ours = getattr(distributed, net).state_dict()
        theirs = getattr(local, net).state_dict()
        for name, tensor in theirs.items():
            # Weights and BatchNorm buffers (chained over the units) alike.
            torch.testing.assert_close(ours[name], tensor, rtol=1e-5, atol=1e-6, msg=name)


def test_alternating_d_units_send_no_generator_tensors() -> None:
    plan = SyncPlan(400, 5, 40, 2, 16, 1, update_rule="alternating")
    rule = make_rule("sync", plan, Config(), MODEL)
    g, d = build_models(MODEL, seed=0)
    result = rule.compute(Workspace(g, d, Labelled(), CPU), rule.units_of(0)[0])
    assert result.parameters and all(k.startswith("d.") for k in result.parameters)
    assert all(k.startswith("dbuf.") for k in result.buffers)
    assert result.stats.g_loss_sum == 0 and result.stats.d_loss_sum > 0


# ------------------------------------------------------------------------------------ federated


def test_federated_combine_adds_the_fedavg_weighted_delta_with_sgd_lr_1() -> None:
    rule = federated_rule()
    server = sgd_server(lr=1.0)
    before = [p.detach().clone() for p in server.discriminator.parameters()]
    units = rule.units_of(0)[:2]
    sizes = rule.partition.sizes()
    n0, n1 = (int(sizes[u.device]) for u in units if u.device is not None)
    results = [constant_result(server, 0.1, 10), constant_result(server, 0.4, 10)]

    rule.combine(server, units, results)

    expected = (0.1 * n0 + 0.4 * n1) / (n0 + n1)  # McMahan's weights: shard sizes
    for p, p0 in zip(server.discriminator.parameters(), before, strict=True):
        torch.testing.assert_close(p, p0 + expected)


def test_federated_combine_weights_buffers_like_deltas() -> None:
    rule = federated_rule(weighting="uniform")
    server = sgd_server()
    mean = dict(server.generator.named_buffers())["main.1.running_mean"].clone()
    units = rule.units_of(0)[:2]
    results = [constant_result(server, 0.2, 10), constant_result(server, 0.6, 10)]

    rule.combine(server, units, results)

    torch.testing.assert_close(
        dict(server.generator.named_buffers())["main.1.running_mean"], mean + 0.4
    )


def test_federated_round_has_device_0_and_ceil_c_n_clients_with_encoded_indices() -> None:
    rule = federated_rule()

    units = rule.units_of(2)

    devices = [u.device for u in units]
    assert devices[0] == 0 and len(devices) == 1 + 2  # ceil(0.5 * 4) clients
    assert len(set(devices)) == len(devices)
    assert [u.index for u in units] == [2 * 5 + d for d in devices if d is not None]


def test_federated_run_ends_after_its_rounds() -> None:
    rule = federated_rule()
    assert rule.units_of(5) == [] and rule.plan.total_versions == 5


def test_federated_unit_is_the_same_whoever_computes_it() -> None:
    rule = federated_rule()
    unit = rule.units_of(1)[1]
    outcomes = []
    for _ in range(2):
        g, d = build_models(MODEL, seed=9)
        outcomes.append(rule.compute(Workspace(g, d, rule.dataset, CPU), unit))

    a, b = outcomes
    for name in a.parameters:
        assert torch.equal(a.parameters[name], b.parameters[name]), name
    assert a.device_state is not None and b.device_state is not None
    for name in a.device_state:
        assert torch.equal(a.device_state[name], b.device_state[name]), name


def test_federated_unit_returns_the_delta_of_its_local_steps() -> None:
    rule = federated_rule()
    unit = rule.units_of(0)[0]
    g, d = build_models(MODEL, seed=9)
    start = {n: p.detach().clone() for n, p in g.named_parameters()}

    result = rule.compute(Workspace(g, d, rule.dataset, CPU), unit)

    for n, p in g.named_parameters():
        torch.testing.assert_close(result.parameters["g." + n], p.detach() - start[n])
    assert result.images == 3 * 8  # E steps of B images


def test_federated_device_state_carries_adam_across_rounds() -> None:
    rule = federated_rule()
    g, d = build_models(MODEL, seed=9)
    unit = rule.units_of(0)[0]
    first = rule.compute(Workspace(g, d, rule.dataset, CPU), unit)
    assert first.device_state is not None
    assert float(first.device_state["g.0.step"]) == 3.0

    second = rule.compute(
        Workspace(g, d, rule.dataset, CPU), Unit(unit.index + 5, 0), UnitStart(first.device_state)
    )

    assert second.device_state is not None
    assert float(second.device_state["g.0.step"]) == 6.0


def test_weak_client_runs_half_the_local_steps() -> None:
    rule = federated_rule(weak_fraction=1.0)
    client = next(u for u in rule.units_of(0) if u.device)
    g, d = build_models(MODEL, seed=9)

    result = rule.compute(Workspace(g, d, rule.dataset, CPU), client)

    assert result.images == 1 * 8  # max(1, 3 // 2) steps
    assert rule.max_images(client) == 8


def test_shard_smaller_than_a_batch_gives_batches_of_the_whole_shard() -> None:
    rule = federated_rule(Labelled(n=20), devices=4, batch_size=8)  # shards of 4 images

    batches = rule.batches(0, 3)

    shard = set(rule.partition.shards[3].tolist())
    assert [len(b) for b in batches] == [4, 4, 4]
    assert all(set(b) == shard for b in batches)


def test_round_closes_early_only_after_the_timeout_with_half_its_members() -> None:
    rule = federated_rule(round_timeout=10.0)
    assert rule.ready(3, 3, 0.0)
    assert not rule.ready(2, 3, 9.0)
    assert rule.ready(2, 3, 10.0)
    assert not rule.ready(1, 3, 1000.0)


def test_round_without_timeout_waits_for_every_member() -> None:
    rule = federated_rule()
    assert not rule.ready(2, 3, 1e9)


def test_label_needing_options_are_refused_for_an_unlabelled_dataset() -> None:
    with pytest.raises(GanError, match="no class labels"):
        FederatedPlan.from_config(
            federated_config(non_iid=True, magic_num=30), Labelled(labelled=False)
        )


def test_federated_plan_survives_its_stored_form() -> None:
    plan = FederatedPlan.from_config(federated_config(non_iid=True, magic_num=30), Labelled())
    assert plan_from_dict("federated", plan.to_dict()) == plan


def test_rounds_derive_from_epochs_when_not_given() -> None:
    config = federated_config(rounds=None)
    config.training.epochs = 2
    plan = FederatedPlan.from_config(config, Labelled(n=400))
    # 3 members x 3 steps x 8 images = 72 images a round; 800 images need 12 rounds.
    assert plan.rounds == 12


def test_lsgan_unit_does_not_depend_on_the_global_random_state() -> None:
    # FeGAN's discriminator has dropout, which draws from torch's global generator.
    lsgan = ModelConfig(image_size=32, channels=1, latent_dim=8, arch="lsgan")
    dataset = Labelled()
    config = federated_config()
    rule = make_rule(
        "federated", FederatedPlan.from_config(config, dataset), config, lsgan, dataset
    )
    unit = rule.units_of(0)[1]
    outcomes = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        g, d = build_models(lsgan, seed=9)
        outcomes.append(rule.compute(Workspace(g, d, dataset, CPU), unit))

    for name, tensor in outcomes[0].parameters.items():
        assert torch.equal(tensor, outcomes[1].parameters[name]), name


def test_a_result_does_not_change_when_the_networks_are_reused() -> None:
    rule = federated_rule()
    unit = rule.units_of(0)[0]
    g, d = build_models(MODEL, seed=9)
    result = rule.compute(Workspace(g, d, rule.dataset, CPU), unit)
    kept = {k: v.clone() for k, v in result.buffers.items()}

    rule.compute(Workspace(g, d, rule.dataset, CPU), rule.units_of(0)[1])

    for name, tensor in kept.items():
        assert torch.equal(result.buffers[name], tensor), name


def test_reset_local_state_sends_no_device_state_and_ignores_a_stored_one() -> None:
    keep, reset = federated_rule(), federated_rule(local_state="reset")
    g, d = build_models(MODEL, seed=9)
    unit = reset.units_of(0)[0]
    stale = keep.compute(Workspace(g, d, keep.dataset, CPU), unit).device_state
    fresh = [build_models(MODEL, seed=9) for _ in range(2)]

    with_state = reset.compute(Workspace(*fresh[0], reset.dataset, CPU), unit, UnitStart(stale))
    without = reset.compute(Workspace(*fresh[1], reset.dataset, CPU), unit)

    assert reset.device_state_spec(g, d) is None and with_state.device_state is None
    for name, tensor in without.parameters.items():
        assert torch.equal(with_state.parameters[name], tensor), name


def test_given_rounds_set_the_epochs_progress_displays_show() -> None:
    plan = FederatedPlan.from_config(federated_config(rounds=12), Labelled(n=400))
    # 12 rounds of 72 images are 864 images: 2.16 passes over 400, shown as 3 epochs.
    assert plan.epochs == 3 and plan.epochs_done(12) == pytest.approx(2.16)


class WithUnreadable(Labelled):
    """Labelled images of which every 10th cannot be read."""

    def get_batch(self, indices: Sequence[int]) -> tuple[torch.Tensor, int]:
        ok = [i for i in indices if i % 10 != 0]
        return self.images[ok], len(indices) - len(ok)


def test_a_sync_unit_counts_the_images_it_could_not_read() -> None:
    plan = SyncPlan(dataset_size=400, seed=1, images_per_unit=40, units_per_update=1,
                    micro_batch=20, epochs=1, update_rule="simultaneous")  # fmt: skip
    dataset = WithUnreadable()
    rule = make_rule("sync", plan, Config(), MODEL, dataset)
    g, d = build_models(MODEL, seed=0)
    unreadable = sum(1 for i in plan.unit_images(0) if i % 10 == 0)
    assert unreadable > 0  # the unit does meet some

    result = rule.compute(Workspace(g, d, dataset, CPU), Unit(0))

    assert (result.images, result.stats.skipped) == (40 - unreadable, unreadable)


def test_a_federated_unit_counts_the_images_it_could_not_read() -> None:
    dataset = WithUnreadable()
    rule = federated_rule(dataset)
    g, d = build_models(MODEL, seed=9)
    result = rule.compute(Workspace(g, d, dataset, CPU), rule.units_of(0)[0])
    assert result.images + result.stats.skipped == 3 * 8
    assert result.stats.skipped > 0


class Unreadable(Labelled):
    """Every image fails to load (a student's broken copy of the data)."""

    def get_batch(self, indices: Sequence[int]) -> tuple[torch.Tensor, int]:
        return self.images[:0], len(indices)


def test_a_unit_without_one_readable_image_is_a_clear_dataset_error() -> None:
    plan = SyncPlan(dataset_size=400, seed=0, images_per_unit=64, units_per_update=2,
                    micro_batch=32, epochs=1, update_rule="simultaneous")  # fmt: skip
    rule = make_rule("sync", plan, Config(), MODEL)
    g, d = build_models(MODEL, seed=0)
    with pytest.raises(GanError, match=r"unit 1: none of its 64 images could be read"):
        rule.compute(Workspace(g, d, Unreadable(), CPU), Unit(1))


def test_a_device_without_one_readable_image_is_a_clear_dataset_error() -> None:
    rule = federated_rule(Unreadable())
    g, d = build_models(MODEL, seed=0)
    unit = rule.units_of(0)[0]
    with pytest.raises(GanError, match=r"none of its images could be read"):
        rule.compute(Workspace(g, d, Unreadable(), CPU), unit)


def test_a_bfloat16_run_rounds_a_units_gradients_to_bfloat16_values() -> None:
    config = Config()
    config.coordinator.transfer_dtype = "bfloat16"
    plan = SyncPlan(400, 5, 48, 2, 16, 1, update_rule="simultaneous")
    rule = make_rule("sync", plan, config, MODEL)
    g, d = build_models(MODEL, seed=0)
    result = rule.compute(Workspace(g, d, Labelled(), CPU), rule.units_of(0)[0])
    spec = rule.result_spec(g, d, 0)
    for name, tensor in result.parameters.items():
        assert spec.dtypes[name] == torch.bfloat16
        assert torch.equal(tensor, tensor.to(torch.bfloat16).float())
    assert all(spec.dtypes[name] == b.dtype for name, b in result.buffers.items())


def test_the_plan_fields_taken_as_configured_are_federated_options() -> None:
    from ganfriends.config import option_fields
    from ganfriends.rules.federated import AS_CONFIGURED

    assert set(AS_CONFIGURED) <= set(FederatedPlan.__dataclass_fields__)
    assert set(AS_CONFIGURED) <= set(option_fields("federated"))
