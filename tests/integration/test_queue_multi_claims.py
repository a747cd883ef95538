"""Multi-unit claims against a real PostgreSQL: one call claims several units of a version
(migration 0010), one round trip uploads their results, under the same checks as one unit."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from ganfriends.classroom import queue
from ganfriends.classroom.queue import Claim, Outgoing
from ganfriends.db import Database
from tests.integration.queue_helpers import Raw, new_run, register


def outgoing(claim: Claim, payload: bytes = b"grads") -> Outgoing:
    """An upload of ``payload`` for ``claim``."""
    return Outgoing(claim, images=64, payload=payload, device_state=None, compute_seconds=0.01)


def test_a_claim_of_three_takes_the_three_lowest_units_each_under_its_own_lease(
    db: Database, raw: Raw
) -> None:
    run_id = new_run(db, units_per_update=5)
    worker = register(db, run_id)

    claims = queue.claim(db, run_id, worker, 3)

    assert [c.unit.index for c in claims] == [0, 1, 2]
    assert len({c.token for c in claims}) == 3
    assert [raw.unit(c.unit_id)["state"] for c in claims] == ["claimed"] * 3
    assert all(raw.lease(c.token)["live"] for c in claims)
    assert [u["state"] for u in raw.units(run_id)][3:] == ["pending", "pending"]


@pytest.mark.parametrize(("asked", "granted"), [(100, 4), (0, 1), (-7, 1)])
def test_a_claim_is_capped_by_the_run_and_takes_at_least_one_unit(
    db: Database, asked: int, granted: int
) -> None:
    run_id = new_run(db, units_per_update=8, max_units_per_claim=4)
    worker = register(db, run_id)

    claims = queue.claim(db, run_id, worker, asked)

    assert len(claims) == granted


def test_a_worker_holding_live_leases_claims_nothing_more(db: Database) -> None:
    run_id = new_run(db, units_per_update=6)
    worker = register(db, run_id)
    assert len(queue.claim(db, run_id, worker, 2)) == 2

    again = queue.claim(db, run_id, worker, 2)

    assert again == []


def test_one_upload_stores_each_result_of_the_claim_as_its_own_copy(db: Database, raw: Raw) -> None:
    run_id = new_run(db, units_per_update=3)
    worker = register(db, run_id)
    claims = queue.claim(db, run_id, worker, 3)

    stored = queue.submit(db, run_id, worker, [outgoing(c, b"g%d" % c.unit.index) for c in claims])

    assert stored == {c.unit_id for c in claims}
    rows = raw.rows("SELECT unit_index, payload FROM results ORDER BY unit_index")
    assert [(r["unit_index"], bytes(r["payload"])) for r in rows] == [
        (0, b"g0"), (1, b"g1"), (2, b"g2"),
    ]  # fmt: skip
    assert {raw.lease(c.token)["state"] for c in claims} == {"done"}
    assert {u["state"] for u in raw.units(run_id)} == {"done"}


def test_an_upload_carrying_another_workers_lease_stores_only_the_callers_own(
    db: Database, raw: Raw
) -> None:
    run_id = new_run(db, units_per_update=4)
    mine, theirs = register(db, run_id, "mine"), register(db, run_id, "theirs")
    [own] = queue.claim(db, run_id, mine)
    [foreign] = queue.claim(db, run_id, theirs)

    stored = queue.submit(db, run_id, mine, [outgoing(own), outgoing(foreign, b"forged")])

    assert stored == {own.unit_id}
    assert raw.count("results", "unit_id = %(u)s", u=foreign.unit_id) == 0
    assert raw.lease(foreign.token)["state"] == "active"  # still the other worker's to upload


def test_a_token_repeated_in_one_upload_stores_one_copy(db: Database, raw: Raw) -> None:
    run_id = new_run(db, units_per_update=2)
    worker = register(db, run_id)
    [claim] = queue.claim(db, run_id, worker)

    stored = queue.submit(db, run_id, worker, [outgoing(claim, b"one"), outgoing(claim, b"two")])

    assert stored == {claim.unit_id}
    row = raw.one("SELECT payload FROM results WHERE unit_id = %(u)s", u=claim.unit_id)
    assert bytes(row["payload"]) == b"one"


def test_an_oversized_result_in_an_upload_is_refused_and_the_others_stored(
    db: Database, raw: Raw
) -> None:
    run_id = new_run(db, units_per_update=2)
    queue.set_upload_limit(db, run_id, 16)
    worker = register(db, run_id)
    small, large = queue.claim(db, run_id, worker, 2)

    stored = queue.submit(db, run_id, worker, [outgoing(small), outgoing(large, b"x" * 17)])

    assert stored == {small.unit_id}
    assert raw.unit(large.unit_id)["state"] == "claimed"


def test_concurrent_multi_unit_claimers_get_every_unit_exactly_once(
    db_url: str, db: Database, raw: Raw
) -> None:
    # Prepare: 30 units, four workers in threads, each with its own connection, claiming 3 at
    # a time and uploading them together until the version is empty (no backup copies: they
    # would hand a unit to a second worker on purpose).
    run_id = new_run(db, units_per_update=30, images_per_unit=16, max_backups=0)
    workers = [register(db, run_id, f"w{i}") for i in range(4)]
    start = threading.Barrier(len(workers))
    got: dict[int, list[int]] = {}
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            with Database(db_url, min_size=1, max_size=1, timeout=10) as mine:
                start.wait()
                units: list[int] = []
                while claims := queue.claim(mine, run_id, worker, 3):
                    assert len(claims) <= 3
                    stored = queue.submit(mine, run_id, worker, [outgoing(c) for c in claims])
                    assert stored == {c.unit_id for c in claims}
                    units += [c.unit.index for c in claims]
                got[worker] = units
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in workers]

    # Execute
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    # Assert: no error, every unit once, each claimer's units in order, one copy per unit.
    assert not errors, errors
    claimed = Counter(index for units in got.values() for index in units)
    assert sorted(claimed) == list(range(30)) and set(claimed.values()) == {1}
    assert all(units == sorted(units) for units in got.values())
    assert sum(1 for units in got.values() if units) >= 2, "the claimers did not race"
    assert raw.count("results") == 30
