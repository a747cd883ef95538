"""``ganfriends doctor`` against a real PostgreSQL: a healthy student passes, and each thing that
stops a worker fails with its own line."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from ganfriends.classroom import queue
from ganfriends.db import Database, EmbeddedPostgres, ServerInfo
from ganfriends.db._pgctl import free_port
from ganfriends.db.students import revoke_student
from ganfriends.doctor.checks import Report, Result, Status
from ganfriends.doctor.instructor import check_instructor
from ganfriends.doctor.student import check_download
from tests.integration.doctor_helpers import (
    folder_run,
    student_config,
    student_doctor,
    write_images,
)
from tests.integration.student_helpers import Student

STUDENT_CHECKS = ["url", "tls", "login", "rights", "latency", "run", "dataset", "device",
                  "download", "unit", "claims"]  # fmt: skip


@pytest.fixture
def images(tmp_path: Path) -> Path:
    return write_images(tmp_path / "images")


def failed(results: dict[str, Result]) -> dict[str, str]:
    return {name: r.detail for name, r in results.items() if r.status is Status.FAIL}


def test_a_healthy_student_passes_every_check(db: Database, student: Student, images: Path) -> None:
    folder_run(db, images)

    status, results = student_doctor(student_config(images), student.url)

    assert list(results) == STUDENT_CHECKS
    assert [r.line() for r in results.values() if r.status is not Status.OK] == []
    assert status == 0
    assert (
        "use --units-per-claim" in results["claims"].detail
        or "(the default)" in results["claims"].detail
    )


def test_a_run_that_downloads_int8_passes_every_check(
    db: Database, student: Student, images: Path
) -> None:
    folder_run(db, images, download_dtype="int8")

    status, results = student_doctor(student_config(images), student.url)

    assert [r.line() for r in results.values() if r.status is not Status.OK] == []
    assert status == 0


def test_the_download_check_fetches_the_copy_a_worker_downloads(db: Database, images: Path) -> None:
    run = queue.get_run(db, folder_run(db, images, download_dtype="int8"))

    found = check_download(db, run).value

    assert found is not None
    weights = queue.weights(db, run.id, run.version)  # the float32 weights the coordinator keeps
    assert weights is not None
    assert found.size < 0.5 * (len(weights.generator) + len(weights.discriminator))


def test_a_revoked_student_fails_at_login(db: Database, student: Student, images: Path) -> None:
    folder_run(db, images)
    revoke_student(student.admin_url, student.name)

    status, results = student_doctor(student_config(images), student.url)

    assert status == 1
    assert failed(results) == {
        "login": f"{student.name} may no longer log in (revoked by the instructor?): ask the "
        "instructor for a new URL"
    }
    assert results["run"].status is Status.SKIP


def test_without_a_running_run_the_run_check_fails(student: Student, images: Path) -> None:
    status, results = student_doctor(student_config(images), student.url)

    assert status == 1
    assert list(failed(results)) == ["run"]
    assert failed(results)["run"].startswith("no run is running")


def test_other_images_than_the_runs_fail_the_dataset_check(
    db: Database, student: Student, images: Path, tmp_path: Path
) -> None:
    folder_run(db, images)
    other = write_images(tmp_path / "other")
    (other / "000.png").write_bytes((other / "001.png").read_bytes())  # one image differs

    status, results = student_doctor(student_config(other), student.url)

    assert status == 1
    assert list(failed(results)) == ["dataset"]
    assert "is not the run's" in failed(results)["dataset"]
    assert results["unit"].status is Status.SKIP


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data directory for the servers on the network below: initdb, the slow part, runs
    once, and each test starts the server as it needs it."""
    return tmp_path_factory.mktemp("network") / "pg"


@contextmanager
def listening(cluster: Path, *, plaintext: bool) -> Iterator[ServerInfo]:
    """The server of ``cluster`` on 127.0.0.1, with TLS or without, for the block."""
    server = EmbeddedPostgres(
        cluster, durable=False, listen="127.0.0.1", port=free_port(), plaintext=plaintext
    )
    try:
        yield server.start()
    finally:
        server.stop()


def test_a_server_without_tls_fails_when_the_url_requires_it(cluster: Path, images: Path) -> None:
    with listening(cluster, plaintext=True) as info:
        status, results = student_doctor(student_config(images), info.url() + "?sslmode=require")

    assert status == 1
    assert list(failed(results)) == ["tls", "login"]
    assert "offers no TLS and your URL requires it (sslmode=require)" in failed(results)["tls"]


def test_a_certificate_other_than_the_one_given_fails_the_tls_check(
    cluster: Path, images: Path
) -> None:
    with listening(cluster, plaintext=False) as info:
        status, results = student_doctor(student_config(images), info.url(), "AB" * 32)

    assert status == 1
    assert info.tls is not None
    assert failed(results)["tls"].startswith(
        f"the server's certificate {info.tls.fingerprint} is not the one given ("
    )


def instructor_doctor(url: str) -> tuple[int, dict[str, Result]]:
    results: list[Result] = []
    status = check_instructor(student_config(Path()), url, workers=None,
                              report=Report(results.append))  # fmt: skip
    return status, {r.check: r for r in results}


def test_the_instructor_is_told_a_running_run_has_no_coordinator(
    db: Database, db_url: str, images: Path
) -> None:
    run_id = folder_run(db, images)

    status, results = instructor_doctor(db_url)

    assert status == 1
    assert failed(results)["coordinator"] == (
        f"run {run_id} (sync, version 0 of 2) has no coordinator: students' uploads wait "
        f"unused; start `ganfriends coordinator` (it resumes run {run_id})"
    )


def test_the_instructor_sees_the_coordinator_holding_its_run(
    db: Database, db_url: str, images: Path
) -> None:
    run_id = folder_run(db, images)

    with db.session_lock("lock_run", "unlock_run", run_id=run_id) as lock:
        assert lock.held
        _, results = instructor_doctor(db_url)

    assert results["coordinator"].status is Status.OK
    assert results["coordinator"].detail.startswith(f"run {run_id} (sync, version 0 of 2): held by")
