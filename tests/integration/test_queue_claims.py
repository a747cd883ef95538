"""claim_unit against a real PostgreSQL: concurrent claimers, run scoping, live leases."""

from __future__ import annotations

import multiprocessing
from collections import Counter

import pytest

from ganfriends.db import Database
from tests.integration.queue_helpers import (
    Raw,
    claim,
    claim_until_empty,
    held_by_a,
    new_run,
    register,
    submit,
)

CLAIMERS = 6
UNITS = 40


@pytest.mark.slow  # six spawned interpreters import torch
def test_concurrent_claimers_get_every_unit_exactly_once_in_unit_order(
    db: Database, db_url: str, raw: Raw
) -> None:
    # Prepare: one run whose version 0 has 40 units, six registered workers.
    run_id = new_run(db, units_per_update=UNITS, images_per_unit=16)  # 40 units of 16 images
    workers = [register(db, run_id, f"w{i}") for i in range(CLAIMERS)]
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(CLAIMERS)
    out = ctx.Queue()
    procs = [
        ctx.Process(target=claim_until_empty, args=(db_url, run_id, w, start, out)) for w in workers
    ]

    # Execute: six processes, each with its own Database, claim until the queue is empty.
    for p in procs:
        p.start()
    try:
        got = dict(out.get(timeout=120) for _ in procs)
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():  # pragma: no cover - only when the test already failed
                p.kill()
                p.join()
        out.close()
        out.join_thread()

    # Assert: every unit claimed once, none lost, each claimer's units in unit_index order.
    errors = {w: claims for w, claims in got.items() if isinstance(claims, str)}
    assert not errors, errors
    assert all(p.exitcode == 0 for p in procs)
    claimed = Counter(index for claims in got.values() for index, _ in claims)
    assert sorted(claimed) == list(range(UNITS))
    assert set(claimed.values()) == {1}
    for claims in got.values():
        indexes = [index for index, _ in claims]
        assert indexes == sorted(indexes)
    assert sum(1 for claims in got.values() if claims) >= 2, "the claimers did not race"
    units = raw.units(run_id)
    assert {u["state"] for u in units} == {"done"}  # each claimer uploads before its next claim
    assert {u["attempts"] for u in units} == {1}
    leases = raw.rows(
        "SELECT l.unit_id, l.worker_id FROM leases l JOIN work_units u ON u.id = l.unit_id"
        " WHERE u.run_id = %(run_id)s AND l.state = 'done'",
        run_id=run_id,
    )
    owner = {unit_id: w for w, claims in got.items() for _, unit_id in claims}
    assert {row["unit_id"]: row["worker_id"] for row in leases} == owner
    assert len(leases) == UNITS


def test_claims_hand_out_units_in_unit_index_order(db: Database) -> None:
    # Prepare
    run_id = new_run(db, units_per_update=4)
    worker = register(db, run_id)

    # Execute
    indexes = []
    while (row := claim(db, run_id, worker)) is not None:
        indexes.append(row["unit_index"])
        submit(db, run_id, worker, row["token"])  # one live lease per worker: upload, go on

    # Assert
    assert indexes == [0, 1, 2, 3]


@pytest.mark.parametrize("run_state", ["stopped", "complete"])
def test_claim_returns_nothing_when_the_run_is_not_running(
    db: Database, raw: Raw, run_state: str
) -> None:
    # Prepare: a run with pending units that is no longer running.
    run_id = new_run(db, units_per_update=3)
    worker = register(db, run_id)
    if run_state == "stopped":
        assert db.execute("stop_run", run_id=run_id) == 1
    else:
        raw.rows("UPDATE runs SET state = 'complete' WHERE id = %(id)s RETURNING id", id=run_id)

    # Execute
    got = claim(db, run_id, worker)

    # Assert
    assert got is None
    assert {u["state"] for u in raw.units(run_id)} == {"pending"}
    assert raw.count("leases") == 0


def test_claim_never_hands_out_units_of_another_run(db: Database, raw: Raw) -> None:
    # Prepare: two running runs in one database, both with pending units.
    run_a = new_run(db, units_per_update=3, name="a")
    run_b = new_run(db, units_per_update=3, name="b")
    worker_a = register(db, run_a)

    # Execute: claim on run A until it has nothing left.
    claims = []
    while (row := claim(db, run_a, worker_a)) is not None:
        claims.append(row)
        submit(db, run_a, worker_a, row["token"])

    # Assert: only run A's units; run B's are untouched.
    a_units = {u["id"] for u in raw.units(run_a)}
    assert {c["unit_id"] for c in claims} == a_units
    assert len(claims) == 3
    assert {u["state"] for u in raw.units(run_b)} == {"pending"}


def test_claimed_unit_is_not_claimed_again_while_its_lease_is_live(db: Database, raw: Raw) -> None:
    # Prepare: one unit, claimed by A.
    run_id, worker_a, worker_b, first = held_by_a(db)

    # Execute: B and A itself ask again while the lease is live.
    again_b = claim(db, run_id, worker_b)
    again_a = claim(db, run_id, worker_a)

    # Assert
    assert again_b is None and again_a is None
    unit = raw.unit(first["unit_id"])
    assert unit["state"] == "claimed" and unit["attempts"] == 1
    assert raw.count("leases") == 1
    assert raw.lease(first["token"])["state"] == "active"
