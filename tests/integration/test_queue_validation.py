"""The coordinator's validation of uploads stored through submit_result, on a real PostgreSQL.

Each bad upload must be rejected by ``Coordinator.validated_results``, recorded in ``rejections``
against its worker, and its unit requeued, while an honest result next to it is kept.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable

import pytest
import torch
from rich.console import Console

from ganfriends.classroom import queue
from ganfriends.classroom.coordinator import Coordinator
from ganfriends.classroom.intake import MAX_FAILING_STUDENTS, UnitKeepsFailing, Valid
from ganfriends.classroom.payload import encode_result
from ganfriends.classroom.state import RunState, load_run_state
from ganfriends.config import Config
from ganfriends.db import Database, DatabaseError
from tests.integration.queue_helpers import (
    IMAGES_PER_UNIT,
    Raw,
    claim,
    claim_backup,
    new_run,
    random_result,
    register,
    submit,
    tiny_models,
)
from tests.integration.student_helpers import HARDWARE, Student


def valid_blob(seed: int = 0) -> bytes:
    return encode_result(random_result(*tiny_models(), seed=seed))


def _with_result(change: Callable[[dict[str, torch.Tensor]], None]) -> bytes:
    result = random_result(*tiny_models())
    change(result.parameters)
    return encode_result(result)


def _first(gradients: dict[str, torch.Tensor]) -> str:
    return sorted(gradients)[0]


def nan_gradient() -> bytes:
    def change(gradients: dict[str, torch.Tensor]) -> None:
        gradients[_first(gradients)].view(-1)[0] = float("nan")

    return _with_result(change)


def missing_tensor() -> bytes:
    def change(gradients: dict[str, torch.Tensor]) -> None:
        del gradients[_first(gradients)]

    return _with_result(change)


def wrong_shape() -> bytes:
    def change(gradients: dict[str, torch.Tensor]) -> None:
        name = _first(gradients)
        gradients[name] = torch.zeros(gradients[name].numel() + 1)

    return _with_result(change)


def huge_finite_gradient() -> bytes:
    # Finite, but its square overflows Adam's second moment to inf for the rest of the run.
    def change(gradients: dict[str, torch.Tensor]) -> None:
        gradients[_first(gradients)].view(-1)[0] = 3e38

    return _with_result(change)


def all_zero_gradients() -> bytes:
    # A free-rider: no work done, full credit claimed.
    def change(gradients: dict[str, torch.Tensor]) -> None:
        for tensor in gradients.values():
            tensor.zero_()

    return _with_result(change)


def _with_running_var(value: float) -> bytes:
    result = random_result(*tiny_models())
    name = next(k for k in sorted(result.buffers) if k.endswith(".running_var"))
    result.buffers[name].view(-1)[0] = value
    return encode_result(result)


def too_many_images() -> bytes:
    return encode_result(random_result(*tiny_models(), images=IMAGES_PER_UNIT + 1))


def nan_loss() -> bytes:
    result = random_result(*tiny_models())
    result.stats.d_loss_sum = float("nan")
    return encode_result(result)


def _header_blob(header: bytes) -> bytes:
    return len(header).to_bytes(8, "little") + header


def _retyped_tensor(dtype: str) -> bytes:
    """A valid blob whose first 1-d float32 tensor is relabelled ``dtype`` (1 byte/element)."""
    good = valid_blob()
    size = int.from_bytes(good[:8], "little")
    header = json.loads(good[8 : 8 + size])
    name = next(k for k, v in sorted(header.items()) if k != "__metadata__" and v["shape"])
    start, stop = header[name]["data_offsets"]
    header[name].update(dtype=dtype, shape=[stop - start])
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return _header_blob(text) + good[8 + size :]


BAD_UPLOADS: dict[str, tuple[Callable[[], bytes], str]] = {
    "garbage bytes": (lambda: b"\x00\xffthis is not a safetensors blob", "does not fit"),
    "too short": (lambda: b"\x01\x02", "shorter than"),
    "header not json": (lambda: _header_blob(b"{not json}"), "not JSON"),
    "truncated": (lambda: valid_blob()[:-100], "not valid safetensors"),
    "nan gradient": (nan_gradient, "NaN"),
    "missing tensor": (missing_tensor, "missing"),
    "wrong shape": (wrong_shape, "shape"),
    "more images than the unit": (too_many_images, "images"),
    "nan loss statistic": (nan_loss, "d_loss_sum"),
    "huge finite gradient": (huge_finite_gradient, "beyond"),
    "all-zero gradients": (all_zero_gradients, "zero"),
    "negative running variance": (lambda: _with_running_var(-1.0), "not positive"),
    "zero running variance": (lambda: _with_running_var(0.0), "not positive"),
}

# Headers crafted to make a parser raise something other than a validation error.
HOSTILE_UPLOADS: dict[str, Callable[[], bytes]] = {
    "deeply nested header": lambda: _header_blob(b"[" * 5000 + b"]" * 5000),
    "huge integer in header": lambda: _header_blob(b'{"x": ' + b"9" * 5000 + b"}"),
    "dtype unknown to torch": lambda: _retyped_tensor("F8_E8M0"),
}


def coordinator(db: Database) -> Coordinator:
    return Coordinator(db, Config(), console=Console(file=io.StringIO()))


def upload(db: Database, run_id: int, worker: int, payload: bytes, images: int = 64) -> int:
    """Claim the next unit and store ``payload`` for it through submit_result."""
    lease = claim(db, run_id, worker)
    assert lease is not None
    accepted = submit(db, run_id, worker, lease["token"], payload, images=images)
    assert accepted is not None, "submit_result refused the upload"
    return int(accepted["unit_id"])


def validate(db: Database, run_id: int) -> list[Valid] | None:
    return coordinator(db).validated_results(load_run_state(db, run_id))


@pytest.mark.parametrize("kind", list(BAD_UPLOADS))
def test_bad_upload_is_rejected_recorded_and_its_unit_requeued(
    db: Database, raw: Raw, kind: str
) -> None:
    # Prepare: an honest result for unit 0 and a bad one for unit 1, both stored.
    make_bad, reason = BAD_UPLOADS[kind]
    run_id = new_run(db, units_per_update=2)
    honest, cheat = register(db, run_id, "honest"), register(db, run_id, "cheat")
    good_unit = upload(db, run_id, honest, valid_blob())
    bad_unit = upload(db, run_id, cheat, make_bad())

    # Execute
    valid = validate(db, run_id)

    # Assert: rejected against its worker and requeued; the honest result is kept.
    assert valid is None
    rejection = raw.one("SELECT * FROM rejections")
    assert rejection["worker_id"] == cheat and rejection["run_id"] == run_id
    assert (rejection["version"], rejection["unit_index"]) == (0, 1)
    assert reason in rejection["reason"]
    assert raw.worker(cheat)["rejected"] == 1 and raw.worker(honest)["rejected"] == 0
    assert raw.unit(bad_unit)["state"] == "pending"
    assert raw.unit(good_unit)["state"] == "done"
    kept = raw.rows("SELECT unit_id, worker_id FROM results")
    assert kept == [{"unit_id": good_unit, "worker_id": honest}]
    redo = claim(db, run_id, honest)
    assert redo is not None and redo["unit_id"] == bad_unit


@pytest.mark.parametrize("kind", list(HOSTILE_UPLOADS))
def test_hostile_header_is_rejected_not_raised(db: Database, raw: Raw, kind: str) -> None:
    # Prepare
    run_id = new_run(db, units_per_update=2)
    honest, cheat = register(db, run_id, "honest"), register(db, run_id, "cheat")
    upload(db, run_id, honest, valid_blob())
    bad_unit = upload(db, run_id, cheat, HOSTILE_UPLOADS[kind]())

    # Execute
    valid = validate(db, run_id)

    # Assert
    assert valid is None
    assert raw.one("SELECT worker_id FROM rejections")["worker_id"] == cheat
    assert raw.unit(bad_unit)["state"] == "pending"


def test_valid_results_are_returned_in_unit_order_with_their_workers(
    db: Database, raw: Raw
) -> None:
    # Prepare: three honest results from two workers.
    run_id = new_run(db, units_per_update=3)
    a, b = register(db, run_id, "a"), register(db, run_id, "b")
    for worker, seed in ((a, 0), (b, 1), (a, 2)):
        upload(db, run_id, worker, valid_blob(seed))

    # Execute
    valid = validate(db, run_id)

    # Assert: all kept, nothing rejected.
    assert valid is not None
    assert [v.upload.worker_id for v in valid] == [a, b, a]
    assert [v.result.images for v in valid] == [IMAGES_PER_UNIT] * 3
    assert raw.count("rejections") == 0
    assert raw.count("results") == 3


def test_an_upload_cannot_credit_more_images_than_its_unit_holds(db: Database, raw: Raw) -> None:
    # Prepare: a valid blob (64 images) uploaded with an inflated images count.
    run_id = new_run(db, units_per_update=1)
    cheat = register(db, run_id, "cheat")
    lease = claim(db, run_id, cheat)
    assert lease is not None
    submit(db, run_id, cheat, lease["token"], valid_blob(), images=1_000_000)

    # Execute: validate and credit, as the coordinator does when it consumes the version.
    validate(db, run_id)
    db.execute("credit_workers", unit_ids=[lease["unit_id"]], worker_ids=[cheat])

    # Assert
    assert raw.worker(cheat)["images_done"] <= IMAGES_PER_UNIT


def update_second_moments(db: Database, factor: float, outlier: float) -> tuple[float, str]:
    """Publish one update of 3 units, unit 2 scaled by ``outlier``; the sum of G's Adam second
    moments afterwards, and the coordinator's output."""
    run_id = new_run(db, units_per_update=3)
    workers = [register(db, run_id, name) for name in ("a", "b", "mallory")]
    for i, worker in enumerate(workers):
        result = random_result(*tiny_models(), seed=i)
        if i == 2:
            result.parameters = {k: v * outlier for k, v in result.parameters.items()}
        upload(db, run_id, worker, encode_result(result))
    config = Config()
    config.coordinator.clip_factor = factor
    out = io.StringIO()
    coord = Coordinator(db, config, console=Console(file=out, width=200))
    state = load_run_state(db, run_id)
    valid = coord.validated_results(state)
    assert valid is not None
    coord.apply_update(state, valid, 0.0)
    moments = sum(float(s["exp_avg_sq"].sum()) for s in state.server.optimizer_g.state.values())
    return moments, out.getvalue()


def test_an_outlying_gradient_is_clipped_to_the_versions_median_norm(db: Database) -> None:
    honest, _ = update_second_moments(db, factor=10.0, outlier=1.0)
    attacked, output = update_second_moments(db, factor=10.0, outlier=1000.0)
    assert "clipped unit 2" in output
    # Three independent random results: the honest mean's square is ~1/3 of one result's; with
    # the outlier clipped to 10x it is ~(1 + 1 + 100) / 9: ~34x the honest one. Unclipped it
    # would be ~(1 + 1 + 1000**2) / 9: ~3e5x (the next test).
    assert attacked < 100 * honest


def test_without_clipping_one_outlier_fills_adams_second_moments(db: Database) -> None:
    honest, _ = update_second_moments(db, factor=0.0, outlier=1.0)
    attacked, output = update_second_moments(db, factor=0.0, outlier=1000.0)
    assert "clipped" not in output
    assert attacked > 1e4 * honest  # what the clipping above prevents


# ---------------------------------------------------------------- copies of one unit


def two_copies(db: Database, first: bytes, second: bytes) -> tuple[int, int, int, int]:
    """Run with one unit; A's copy (``first``) then B's backup copy (``second``) stored."""
    run_id = new_run(db, units_per_update=1)
    a, b = register(db, run_id, "a"), register(db, run_id, "b")
    primary = claim(db, run_id, a)
    backup = claim_backup(db, run_id, b)
    assert primary is not None and backup is not None
    assert submit(db, run_id, a, primary["token"], first) is not None
    assert submit(db, run_id, b, backup["token"], second) is not None
    return run_id, a, b, int(primary["unit_id"])


def test_an_invalid_first_copy_gives_way_to_a_valid_second(db: Database, raw: Raw) -> None:
    # Prepare: A's fast copy is garbage, B's backup copy is honest.
    run_id, a, b, unit_id = two_copies(db, nan_gradient(), valid_blob())

    # Execute: the coordinator's first pass rejects A's; its next pass finds B's.
    first_pass = validate(db, run_id)
    second_pass = validate(db, run_id)

    # Assert
    assert first_pass is None
    assert second_pass is not None and [v.upload.worker_id for v in second_pass] == [b]
    assert raw.unit(unit_id)["state"] == "done"
    assert (raw.worker(a)["rejected"], raw.worker(b)["rejected"]) == (1, 0)


def test_agreeing_copies_use_the_first_and_record_nothing(db: Database, raw: Raw) -> None:
    # Prepare: two honest copies of the same computation.
    run_id, a, _, _ = two_copies(db, valid_blob(3), valid_blob(3))

    # Execute
    valid = validate(db, run_id)

    # Assert: A's copy stands for the unit, B's is dropped, nobody is blamed.
    assert valid is not None and [v.upload.worker_id for v in valid] == [a]
    assert raw.count("rejections") == 0
    assert [r["worker_id"] for r in raw.rows("SELECT worker_id FROM results")] == [a]


def test_disagreeing_copies_are_recorded_against_both_workers(db: Database, raw: Raw) -> None:
    # Prepare: B sends a different computation than A (another batch, a stale model, a forgery).
    run_id, a, b, _ = two_copies(db, valid_blob(3), valid_blob(4))

    # Execute
    valid = validate(db, run_id)

    # Assert: the first valid copy is used; both workers carry the mismatch, which does not
    # count towards the claim limit (one of the two was honest).
    assert valid is not None and [v.upload.worker_id for v in valid] == [a]
    rows = raw.rows("SELECT worker_id, reason FROM rejections ORDER BY worker_id")
    assert [r["worker_id"] for r in rows] == [a, b]
    assert all("copies of unit 0 disagree" in r["reason"] for r in rows)
    assert (raw.worker(a)["rejected"], raw.worker(b)["rejected"]) == (0, 0)
    # Recorded once: the dropped copy is not compared again on the next pass.
    validate(db, run_id)
    assert raw.count("rejections") == 2


def test_a_unit_rejected_for_several_students_stops_the_coordinator_with_a_reason(
    db: Database, raw: Raw
) -> None:
    # Prepare: every participant's copy of the one unit fails (say its data is broken
    # everywhere); each of the instructor's workers is a participant of its own.
    run_id = new_run(db, units_per_update=1)
    workers = [register(db, run_id, f"w{i}") for i in range(MAX_FAILING_STUDENTS)]
    for worker in workers[:-1]:
        upload(db, run_id, worker, nan_gradient())
        assert validate(db, run_id) is None  # rejected, requeued
    upload(db, run_id, workers[-1], nan_gradient())

    # Execute / Assert: the last rejection ends the waiting with one line that says why.
    with pytest.raises(UnitKeepsFailing, match=r"rejected 3 times, from 3 different students"):
        validate(db, run_id)
    assert raw.count("rejections") == MAX_FAILING_STUDENTS


def test_one_student_failing_a_unit_from_every_worker_is_quarantined_and_the_run_goes_on(
    db: Database, raw: Raw, student: Student
) -> None:
    run_id = new_run(db, units_per_update=1)
    with Database(student.url, max_size=2, timeout=5) as mine:
        workers = [queue.register_worker(mine, run_id, f"m{i}", "h", HARDWARE) for i in range(5)]
        for worker in workers[:3]:  # more bad copies of one unit than the old cap of 5 allowed
            upload(mine, run_id, worker, nan_gradient())
            assert validate(db, run_id) is None  # rejected, requeued, never fatal
        with pytest.raises(DatabaseError, match="quarantined"):
            upload(mine, run_id, workers[3], nan_gradient())
    honest = register(db, run_id, "honest")
    upload(db, run_id, honest, valid_blob())
    assert [v.upload.worker_id for v in validate(db, run_id) or []] == [honest]


def test_mismatches_do_not_count_as_rejections_of_the_unit(db: Database, raw: Raw) -> None:
    run_id, *_ = two_copies(db, valid_blob(3), valid_blob(4))
    validate(db, run_id)
    assert raw.count("rejections", "mismatch") == 2
    assert raw.count("rejections", "NOT mismatch") == 0


# ------------------------------------------------------------------ reading as they arrive


def one_of_two_copies_stored(db: Database) -> tuple[int, Coordinator, RunState]:
    """A run of two units, one of which has a valid copy stored: (its unit id, a coordinator,
    the run's state)."""
    run_id = new_run(db, units_per_update=2)
    unit = upload(db, run_id, register(db, run_id), valid_blob())
    return unit, coordinator(db), load_run_state(db, run_id)


def test_a_copy_is_read_once_as_it_arrives_and_not_fetched_again(db: Database, raw: Raw) -> None:
    unit, coord, state = one_of_two_copies_stored(db)
    (first,) = coord.validated_results(state) or []  # read while unit 1 is still missing

    # Were the copy fetched again, this would now fail validation.
    raw.rows(
        "UPDATE results SET payload = 'garbage' WHERE unit_id = %(u)s RETURNING unit_id", u=unit
    )
    (again,) = coord.validated_results(state) or []

    assert again is first
    assert raw.count("rejections") == 0


def test_a_copy_whose_row_went_is_forgotten(db: Database, raw: Raw) -> None:
    unit, coord, state = one_of_two_copies_stored(db)
    assert len(coord.validated_results(state) or []) == 1

    raw.rows("DELETE FROM results WHERE unit_id = %(u)s RETURNING unit_id", u=unit)

    assert coord.validated_results(state) == []
