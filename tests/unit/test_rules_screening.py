"""Screening with the real rules on tiny models: honest results pass bit for bit, each attack is
clipped or refused, and a poisoned update that got through never makes an honest copy of the
next round fail validation."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from ganfriends.blobs import InvalidBlob
from ganfriends.classroom.payload import (
    decode_device_state,
    decode_result,
    encode_device_state,
    encode_result,
)
from ganfriends.config import Config
from ganfriends.models import build_models
from ganfriends.rules import ServerState, SyncPlan, Unit, make_rule
from ganfriends.rules.base import Rule, UnitResult, network_buffers
from ganfriends.rules.capabilities import (
    device_moves,
    device_state_spec,
    inputs_of,
    publishes_weights,
)
from ganfriends.rules.mdgan import WEIGHTS
from ganfriends.rules.screening import Screening, screen_units
from ganfriends.rules.work import UnitStart, Workspace
from ganfriends.training import setup as training_setup
from ganfriends.training import simulate as simulate_module
from ganfriends.training.progress import TrainingProgress
from ganfriends.training.simulate import Students, Tamper
from tests.unit.test_rules import CPU, MODEL, Labelled, federated_rule
from tests.unit.test_rules_mdgan import mdgan_rule

FACTOR = 3.0


class Run:
    """A rule's versions computed one unit at a time on fresh copies of the published networks
    (as workers would), screened as the coordinator screens, with device states kept."""

    def __init__(self, rule: Rule, dataset: Labelled) -> None:
        self.rule, self.dataset = rule, dataset
        g, d = build_models(MODEL, seed=0)
        self.server = ServerState(g, d, *rule.server_optimizers(g, d))
        self.states: dict[int, dict[str, torch.Tensor]] = {}
        self.history: list[dict[str, float]] = []
        self.inputs = inputs_of(rule, self.server, 0)

    def compute(self) -> tuple[list[Unit], list[UnitResult]]:
        """Every unit of the published version, honestly."""
        units = self.rule.units_of(self.server.version)
        results = []
        for unit in units:
            g, d = build_models(MODEL, seed=99)
            g.load_state_dict(self.server.generator.state_dict())
            d.load_state_dict(self.server.discriminator.state_dict())
            state = None if unit.device is None else self.states.get(unit.device)
            results.append(
                self.rule.compute(
                    Workspace(g, d, self.dataset, CPU), unit, UnitStart(state, self.inputs)
                )
            )
        return units, results

    def screen(
        self, units: list[Unit], results: list[UnitResult], students: list[str]
    ) -> Screening:
        server = self.server
        published = network_buffers(server.generator, server.discriminator)
        return screen_units(
            self.rule, units, results, students, self.history, FACTOR,
            published=published if publishes_weights(self.rule) else None,
            previous_states=self.states,
        )  # fmt: skip

    def publish(self, units: list[Unit], screening: Screening) -> None:
        """Combine the screened results and publish the next version."""
        assert not screening.refused
        for unit, result in zip(units, screening.results, strict=True):
            if unit.device is not None and result.device_state is not None:
                self.states[unit.device] = result.device_state
        self.rule.combine(self.server, units, screening.results)
        self.history = [*self.history, screening.reference][-8:]
        self.server.version += 1
        moves = device_moves(self.rule, self.server.version)
        if moves is not None:
            self.states = {moves[n]: s for n, s in self.states.items()}
        self.inputs = inputs_of(self.rule, self.server, self.server.version)

    def honest_versions(self, count: int) -> None:
        for _ in range(count):
            units, results = self.compute()
            screening = self.screen(units, results, [f"s{j}" for j in range(len(units))])
            assert screening.clipped == [] and screening.refused == []
            assert all(a is b for a, b in zip(screening.results, results, strict=True))
            self.publish(units, screening)

    def validates(self, units: list[Unit], results: list[UnitResult]) -> None:
        """Each result passes the transport's validation on arrival, device state included."""
        server, rule = self.server, self.rule
        spec = rule.result_spec(server.generator, server.discriminator, server.version)
        state_spec = device_state_spec(rule, server.generator, server.discriminator)
        for unit, result in zip(units, results, strict=True):
            decode_result(encode_result(result, spec), spec, max_images=rule.max_images(unit))
            if state_spec is not None and result.device_state is not None:
                decode_device_state(encode_device_state(result.device_state), state_spec)


def sync_rule(update_rule: str) -> Rule:
    config = Config()
    config.training.update_rule = update_rule
    plan = SyncPlan(400, 5, 32, 2, 16, 1, max_updates=20, update_rule=update_rule)
    return make_rule("sync", plan, config, MODEL)


RULES: dict[str, Callable[[], tuple[Rule, Labelled]]] = {
    "sync-alternating": lambda: (sync_rule("alternating"), Labelled()),
    "sync-simultaneous": lambda: (sync_rule("simultaneous"), Labelled()),
    "federated": lambda: (federated_rule(), Labelled()),
    "federated-non-iid-weak": lambda: (
        federated_rule(non_iid=True, magic_num=30, weak_fraction=0.5),
        Labelled(),
    ),
    "md-gan": lambda: (mdgan_rule(), Labelled(n=120)),
}


@pytest.mark.parametrize("name", list(RULES))
def test_honest_results_pass_screening_bit_for_bit_with_history(name: str) -> None:
    run = Run(*RULES[name]())
    run.honest_versions(5)  # each version asserts: nothing clipped or refused, same objects


def lazy(result: UnitResult) -> UnitResult:
    """All zeros and one 1e-20: the free-rider the all-zero check let through."""
    parameters = {k: torch.zeros_like(v) for k, v in result.parameters.items()}
    first = next(iter(parameters))
    parameters[first].view(-1)[0] = 1e-20
    return replace(result, parameters=parameters)


@pytest.mark.parametrize("name", list(RULES))
def test_a_near_zero_result_is_refused_for_every_rule(name: str) -> None:
    run = Run(*RULES[name]())
    run.honest_versions(2)
    units, results = run.compute()
    results[-1] = lazy(results[-1])

    screening = run.screen(units, results, [f"s{j}" for j in range(len(units))])

    assert [r.index for r in screening.refused] == [len(units) - 1]


# ------------------------------------------------------------------ federated


def scaled(result: UnitResult, factor: float) -> UnitResult:
    return replace(result, parameters={k: v * factor for k, v in result.parameters.items()})


def test_a_federated_delta_beyond_what_adam_can_move_is_refused_even_at_version_0() -> None:
    run = Run(federated_rule(), Labelled())
    units, results = run.compute()
    attack = [scaled(r, 1e4) for r in results]  # one student holds every unit of the round

    screening = run.screen(units, attack, ["mallory"] * len(units))

    assert screening.accepted == []
    assert all("moved" in r.reason for r in screening.refused)


def test_a_steered_federated_round_is_clipped_and_the_next_round_validates() -> None:
    # The attack (a): a student holds every unit of a round and sends deltas and
    # buffers far beyond the honest ones (within what Adam's bound and validation allow).
    rule = federated_rule(fraction=0.25)  # device 0 and one client: 2-unit rounds
    run = Run(rule, Labelled())
    run.honest_versions(3)
    units, results = run.compute()
    bound = rule.local_steps(0) * rule.learning_rate * 18.0  # just inside the exact check
    attack = [
        replace(
            r,
            parameters={k: torch.full_like(v, bound) for k, v in r.parameters.items()},
            buffers={
                k: (torch.full_like(v, 1e6) if k.endswith("running_var") else v)
                for k, v in r.buffers.items()
            },
        )
        for r in results
    ]

    screening = run.screen(units, attack, ["mallory"] * len(units))

    assert screening.refused == []
    groups = {(c.index, c.group) for c in screening.clipped}
    assert {(0, "g"), (0, "d"), (1, "g"), (1, "d"), (0, "dbuf~"), (1, "gbuf~")} <= groups
    run.publish(units, screening)
    units, honest = run.compute()  # every honest copy of the next round, device 0 included
    run.validates(units, honest)
    after = run.screen(units, honest, [f"s{j}" for j in range(len(units))])
    assert after.refused == []


def test_a_federated_device_state_that_would_blow_up_the_next_step_is_refused() -> None:
    run = Run(federated_rule(), Labelled())
    run.honest_versions(1)
    units, results = run.compute()
    state = dict(results[0].device_state or {})
    state["g.0.exp_avg"] = torch.full_like(state["g.0.exp_avg"], 1e6)
    state["g.0.exp_avg_sq"] = torch.full_like(state["g.0.exp_avg_sq"], 1e-12)
    frozen = dict(results[1].device_state or {})
    frozen |= {k: torch.full_like(v, 1e6) for k, v in frozen.items() if k.endswith("exp_avg_sq")}
    results[0] = replace(results[0], device_state=state)
    results[1] = replace(results[1], device_state=frozen)

    screening = run.screen(units, results, [f"s{j}" for j in range(len(units))])

    reasons = {r.index: r.reason for r in screening.refused}
    assert "exceeds" in reasons[0]  # next step lr * 1e6 / 1e-6: never honest
    assert "second moments" in reasons[1]  # would freeze the device's next honest units


# ------------------------------------------------------------------ md-gan


def test_md_gan_feedback_scaled_1e4_is_clipped_and_the_next_iteration_validates() -> None:
    run = Run(mdgan_rule(), Labelled(n=120))
    run.honest_versions(2)
    units, results = run.compute()
    results[1] = scaled(results[1], 1e4)

    screening = run.screen(units, results, [f"s{j}" for j in range(len(units))])

    assert [(c.index, c.group) for c in screening.clipped] == [(1, "feedback")]
    run.publish(units, screening)
    units, honest = run.compute()
    run.validates(units, honest)
    assert run.screen(units, honest, [f"s{j}" for j in range(len(units))]).refused == []


def test_md_gan_feedback_with_nan_or_the_wrong_shape_is_refused_on_arrival() -> None:
    rule = mdgan_rule()
    run = Run(rule, Labelled(n=120))
    units, results = run.compute()
    spec = rule.result_spec(run.server.generator, run.server.discriminator, 0)
    nan = results[0].parameters["feedback"].clone()
    nan.view(-1)[0] = float("nan")
    wrong = torch.zeros(2, 1, 32, 32)
    for feedback in (nan, wrong):
        blob = encode_result(replace(results[0], parameters={"feedback": feedback}))
        with pytest.raises(InvalidBlob):
            decode_result(blob, spec, max_images=rule.max_images(units[0]))


def test_md_gan_state_swapped_from_another_device_is_refused_once_they_differ() -> None:
    rule = mdgan_rule(iterations=40)
    run = Run(rule, Labelled(n=120))
    run.honest_versions(30)
    units, results = run.compute()
    assert results[2].device_state is not None
    swapped = replace(results[1], device_state=results[2].device_state)  # device 2's D as 1's

    reason = rule.check_result(units[1], swapped, run.states[1])

    assert reason is not None and "moved" in reason
    assert rule.check_result(units[1], results[1], run.states[1]) is None


def test_md_gan_state_swapped_at_the_first_iteration_is_within_one_units_move() -> None:
    # Every device starts from the run's initial D: a swap at iteration 0 cannot be told from
    # the device's own state, but it is another honest unit's D, one bounded move from it.
    rule = mdgan_rule()
    run = Run(rule, Labelled(n=120))
    units, results = run.compute()
    swapped = replace(results[1], device_state=results[2].device_state)
    assert rule.check_result(units[1], swapped, None) is None
    state = results[2].device_state or {}
    d0 = rule.initial_discriminator
    bound = rule.plan.disc_steps * rule.learning_rate * 18.27
    assert all(
        float((state[WEIGHTS + n] - d0[n]).abs().max()) <= bound for n in rule._parameter_names
    )


# ------------------------------------------------------------------ simulate with an attacker


def simulate_sync(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    tamper: Tamper | None = None,
    students: Students | None = None,
) -> Path:
    monkeypatch.setattr(training_setup, "make_dataset", lambda *a, **k: Labelled())
    config = Config()
    config.coordinator.mode = "sync"
    config.coordinator.sample_interval = 10**9
    config.coordinator.max_iterations = 4
    config.training.update_rule = "alternating"
    config.coordinator.images_per_work_unit = 32
    config.coordinator.workunits_per_update = 3
    config.training.micro_batch = 16
    config.training.g_features = config.training.d_features = 4
    config.training.latent_dim = 8
    config.local.device = "cpu"
    config.local.output_dir = str(tmp_path / str(len(list(tmp_path.iterdir()))))
    result = simulate_module.simulate(config, tamper=tamper, students=students)
    return result.latest_checkpoint


def weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    saved = torch.load(checkpoint, map_location="cpu", weights_only=False)
    nets = ("generator_state_dict", "discriminator_state_dict")
    return {f"{net}.{k}": v for net in nets for k, v in saved[net].items()}


def test_a_run_whose_attacker_is_always_refused_equals_the_honest_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def attacker(unit: Unit, result: UnitResult) -> UnitResult:
        return lazy(result) if unit.index % 3 == 1 else result

    honest = weights(simulate_sync(tmp_path, monkeypatch))
    attacked = weights(simulate_sync(tmp_path, monkeypatch, tamper=attacker))

    for name, tensor in honest.items():
        assert torch.equal(attacked[name], tensor), name


def test_a_simulated_attacker_holding_every_unit_is_clipped_once_history_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    notes: list[str] = []

    def attacker(unit: Unit, result: UnitResult) -> UnitResult:
        # Versions 4 and 5 (D's and G's phase of step 2): every unit is the attacker's.
        return scaled(result, 1e4) if 12 <= unit.index < 18 else result

    def students(unit: Unit) -> str:
        return "mallory" if 12 <= unit.index < 18 else f"student {unit.index % 3}"

    monkeypatch.setattr(TrainingProgress, "note", lambda self, text: notes.append(text))
    simulate_sync(tmp_path, monkeypatch, tamper=attacker, students=students)
    clipped = [n for n in notes if "clipped" in n]
    assert len(clipped) == 2 * 3, notes  # each unit of both versions, in its phase's group
    assert not any("refused" in n for n in notes)
