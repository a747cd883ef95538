"""Uploads a hostile student sends through their own login, up to the coordinator's update.

The issue's steering attack (a student holding every unit of a federated round uploads deltas
x1e4), a free-rider (zeros and one 1e-20), a scaled gradient in the sync rule and MD-GAN's
feedback: refused or clipped, struck against the sender only, and the honest copies of the next
round still pass.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator

import pytest
import torch
from rich.console import Console

from ganfriends.classroom import queue
from ganfriends.classroom.coordinator import Coordinator, ResultsRefused
from ganfriends.classroom.payload import decode_device_state, encode_device_state, encode_result
from ganfriends.classroom.state import create_run, load_run_state
from ganfriends.config import Config
from ganfriends.db import Database
from ganfriends.rules import plan_from_config
from ganfriends.rules.base import UnitResult
from ganfriends.rules.capabilities import device_state_spec
from ganfriends.rules.work import UnitStart, Workspace
from tests.integration.queue_helpers import TINY_MODEL, Raw, register
from tests.integration.student_helpers import HARDWARE, Student
from tests.integration.test_modes_transport import federated_run
from tests.unit.test_rules import Labelled

CPU = torch.device("cpu")
Tamper = Callable[[UnitResult], UnitResult]


@pytest.fixture
def mallory(student: Student) -> Iterator[Database]:
    with Database(student.url, max_size=2, timeout=5) as db:
        yield db


def coordinator(db: Database) -> Coordinator:
    return Coordinator(db, Config(), console=Console(file=io.StringIO()))


def sync_run(db: Database, dataset: Labelled, units: int = 3) -> int:
    config = Config()
    config.coordinator.images_per_work_unit = 32
    config.coordinator.workunits_per_update = units
    config.training.micro_batch = 16
    config.training.seed = 4
    plan = plan_from_config("sync", config, dataset)
    with db.transaction() as tx:
        return create_run(
            tx, name="sync", mode="sync", plan=plan, config=config.to_dict(),
            model_config=TINY_MODEL, fingerprint=dataset.fingerprint().to_dict(),
            lease_seconds=30, max_backups=1, max_units_per_claim=4, dataset=dataset,
        )  # fmt: skip


def work(
    db: Database,
    run_id: int,
    worker: int,
    dataset: Labelled,
    tamper: Tamper | None = None,
    *,
    reader: Database,
) -> int:
    """Claim everything this worker may take as ``db``'s role, compute it with the run's rule
    (the published state read through ``reader``, the instructor's login), tamper with it,
    upload it; the number of units uploaded."""
    state = load_run_state(reader, run_id, dataset)
    claims = queue.claim(db, run_id, worker, count=4)
    g, d = state.server.generator, state.server.discriminator
    outgoing = []
    for claimed in claims:
        blob = (
            queue.device_state(db, run_id, claimed.unit.device)
            if claimed.unit.device is not None
            else None
        )
        spec = device_state_spec(state.rule, g, d)
        start = None
        if blob is not None and spec is not None:
            start = decode_device_state(blob, spec)
        state = load_run_state(reader, run_id, dataset)  # fresh published weights per unit
        g, d = state.server.generator, state.server.discriminator
        result = state.rule.compute(Workspace(g, d, dataset, CPU), claimed.unit, UnitStart(start))
        if tamper is not None:
            result = tamper(result)
        device_state = (
            None if result.device_state is None else encode_device_state(result.device_state)
        )
        outgoing.append(
            queue.Outgoing(claimed, result.images, encode_result(result), device_state, 0.0)
        )
    return len(queue.submit(db, run_id, worker, outgoing))


def update(db: Database, run_id: int, dataset: Labelled) -> bool:
    """The coordinator's update of the current version; False when screening refused results."""
    coord = coordinator(db)
    state = load_run_state(db, run_id, dataset)
    valid = coord.validated_results(state)
    assert valid is not None
    try:
        coord.apply_update(state, valid, 0.0)
    except ResultsRefused:
        return False
    return True


def strikes(db: Database, run_id: int) -> dict[str, int]:
    return {r["student"]: r["rejections"] for r in db.fetch_all("student_standing", run_id=run_id)}


def scaled(factor: float) -> Tamper:
    def change(result: UnitResult) -> UnitResult:
        result.parameters = {k: v * factor for k, v in result.parameters.items()}
        return result

    return change


def free_ride(result: UnitResult) -> UnitResult:
    result.parameters = {k: torch.zeros_like(v) for k, v in result.parameters.items()}
    next(iter(result.parameters.values())).view(-1)[0] = 1e-20
    return result


def test_a_student_holding_a_whole_federated_round_cannot_steer_it(
    db: Database, raw: Raw, mallory: Database, student: Student
) -> None:
    dataset = Labelled(n=640)
    run_id = federated_run(db, dataset)
    units = len(raw.units(run_id))
    cheat = queue.register_worker(mallory, run_id, "m", "h", HARDWARE)
    # Alone in the run, the student takes the whole round and sends every delta x1e4.
    assert work(mallory, run_id, cheat, dataset, scaled(1e4), reader=db) == units

    assert not update(db, run_id, dataset)  # refused at version 0 already: nothing applied
    assert strikes(db, run_id)[student.name] == units

    honest = register(db, run_id, "honest")
    for _ in range(units):
        work(db, run_id, honest, dataset, reader=db)
    assert update(db, run_id, dataset)
    # The next round's honest copies pass validation and screening: nobody honest is blamed.
    for _ in range(units):
        work(db, run_id, honest, dataset, reader=db)
    assert update(db, run_id, dataset)
    assert raw.count("rejections", "worker_id = %(w)s", w=honest) == 0


def test_a_free_riders_upload_is_refused_and_struck_against_them_only(
    db: Database, raw: Raw, mallory: Database, student: Student
) -> None:
    dataset = Labelled(n=640)
    run_id = sync_run(db, dataset)
    honest = register(db, run_id, "honest")
    cheat = queue.register_worker(mallory, run_id, "m", "h", HARDWARE)
    assert (
        work(mallory, run_id, cheat, dataset, free_ride, reader=db) == 2
    )  # its fair share of 3 units
    while work(db, run_id, honest, dataset, reader=db):
        pass
    assert not update(db, run_id, dataset)
    assert strikes(db, run_id)[student.name] == 2
    assert raw.count("rejections", "worker_id = %(w)s", w=honest) == 0
    while work(db, run_id, honest, dataset, reader=db):
        pass
    assert update(db, run_id, dataset)


def test_a_scaled_sync_gradient_moves_the_model_no_further_than_the_clip_bound(
    db: Database, raw: Raw, mallory: Database
) -> None:
    dataset = Labelled(n=640)
    run_id = sync_run(db, dataset)
    honest = register(db, run_id, "honest")
    cheat = queue.register_worker(mallory, run_id, "m", "h", HARDWARE)
    work(mallory, run_id, cheat, dataset, scaled(1e4), reader=db)
    while work(db, run_id, honest, dataset, reader=db):
        pass
    output = io.StringIO()
    coord = Coordinator(db, Config(), console=Console(file=output, width=300))
    state = load_run_state(db, run_id, dataset)
    valid = coord.validated_results(state)
    assert valid is not None
    coord.apply_update(state, valid, 0.0)
    assert "clipped" in output.getvalue()
    assert raw.count("rejections", "NOT mismatch") == 0  # clipped, not blamed
