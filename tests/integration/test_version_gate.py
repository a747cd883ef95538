"""Version gating (migration 0013): a run refuses workers older than the release it records, in
the database, so that a worker's Python cannot talk its way past it."""

from __future__ import annotations

import shutil
from pathlib import Path

import psycopg
import pytest

from ganfriends.classroom import queue
from ganfriends.compat import RESULT_FORMAT_VERSION, WorkerTooOld
from ganfriends.db import Database, migrate
from ganfriends.db.migrations import MIGRATIONS_DIR
from tests.integration.queue_helpers import Raw, new_run
from tests.integration.student_helpers import HARDWARE, Student

REFUSAL = (
    f"this run needs ganfriends >= {RESULT_FORMAT_VERSION}: "
    f"pip install -U 'ganfriends>={RESULT_FORMAT_VERSION}'"
)


def require(raw: Raw, run_id: int, version: str) -> None:
    """Raise the run's minimum release, as a later coordinator's run would record it."""
    raw.conn.execute(
        "UPDATE runs SET min_worker_version = %(version)s WHERE id = %(id)s",
        {"version": version, "id": run_id},
    )


def test_a_new_run_records_the_result_format_version(db: Database, raw: Raw) -> None:
    run_id = new_run(db)
    assert raw.scalar("SELECT min_worker_version FROM runs WHERE id = %(id)s", id=run_id) == (
        RESULT_FORMAT_VERSION
    )


def test_a_worker_older_than_the_run_is_refused_with_the_release_to_install(
    db: Database, raw: Raw
) -> None:
    run_id = new_run(db)
    with pytest.raises(WorkerTooOld) as refused:
        queue.register_worker(db, run_id, "old", "laptop", HARDWARE, version="0.0.9")
    assert str(refused.value) == REFUSAL
    assert raw.count("workers") == 0


def test_a_worker_learns_the_refusal_before_it_registers(db: Database, raw: Raw) -> None:
    run_id = new_run(db)
    with pytest.raises(WorkerTooOld) as refused:
        queue.check_version(db, run_id, "0.0.9")
    assert str(refused.value) == REFUSAL
    queue.check_version(db, run_id)  # this release: nothing to say


def test_a_worker_of_this_release_is_accepted(db: Database, raw: Raw) -> None:
    run_id = new_run(db)
    worker = queue.register_worker(db, run_id, "current", "laptop", HARDWARE)
    assert raw.worker(worker)["name"] == "current"


def test_releases_compare_as_numbers_not_text(db: Database, raw: Raw) -> None:
    # As text, '0.10' < '0.9': a newer worker would be refused.
    run_id = new_run(db)
    require(raw, run_id, "0.9")
    queue.register_worker(db, run_id, "newer", "laptop", HARDWARE, version="0.10.0")
    with pytest.raises(WorkerTooOld, match=r">= 0\.9:"):
        queue.register_worker(db, run_id, "older", "laptop", HARDWARE, version="0.8.12")


@pytest.mark.parametrize("version", [None, "1.0; --"])
def test_a_worker_that_declares_no_release_is_refused(db: Database, version: str | None) -> None:
    run_id = new_run(db)
    with pytest.raises(WorkerTooOld):
        queue.register_worker(db, run_id, "vague", "laptop", HARDWARE, version=version)  # type: ignore[arg-type]


# worker_register called from a student's own session, with no ganfriends code in between: an
# older release, and the eight arguments of the call before 0013 (no release declared).
OWN_CALLS = {
    "older": ("SELECT ganfriends.worker_register(%(run)s, 'm', 'h', 'cpu', NULL, NULL, NULL,"
              " NULL, '0.0.1')"),
    "before the gate": ("SELECT ganfriends.worker_register(%(run)s, 'm', 'h', 'cpu', NULL, NULL,"
                        " NULL, NULL)"),
}  # fmt: skip


@pytest.mark.parametrize("call", OWN_CALLS.values(), ids=OWN_CALLS.keys())
def test_a_student_calling_the_function_themselves_is_refused_too(
    db: Database, student: Student, call: str
) -> None:
    run_id = new_run(db)
    with (
        psycopg.connect(student.url, autocommit=True) as session,
        pytest.raises(psycopg.Error, match="needs ganfriends >=") as refused,
    ):
        session.execute(call, {"run": run_id})
    assert refused.value.sqlstate == "GF001"


def test_a_run_created_before_the_gate_accepts_this_releases_workers(
    empty_db_url: str, tmp_path: Path
) -> None:
    # Prepare: a run row in the schema before 0013 (its create_run had no minimum).
    old = tmp_path / "migrations"
    old.mkdir()
    for path in sorted(MIGRATIONS_DIR.glob("*.sql"))[:12]:
        shutil.copy(path, old / path.name)
    with Database(empty_db_url, max_size=2) as db:
        migrate(db, old)
        raw = Raw(empty_db_url)
        try:
            run_id = raw.scalar(
                "INSERT INTO runs (name, mode, plan, total_versions, config, model_config,"
                " fingerprint, lease_seconds) VALUES ('old', 'sync', '{}', 1, '{}', '{}', '{}', 30)"
                " RETURNING id"
            )

            # Execute
            migrate(db)

            # Assert
            queue.register_worker(db, run_id, "today", "laptop", HARDWARE)
            assert raw.scalar("SELECT min_worker_version FROM runs") == "0.1.0"
        finally:
            raw.close()
