"""The instructor's report on a real PostgreSQL: one line per student whatever the number of
their workers, the run's summary, the same numbers as CSV and JSON, and a student's role
refused by the database itself."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass

import pytest

from ganfriends.classroom.report import Report, ReportRefused, build_report
from ganfriends.db import Database
from ganfriends.errors import GanError
from tests.integration.queue_helpers import IMAGES_PER_UNIT, Raw, claim, new_run, register, submit
from tests.integration.student_helpers import Student, new_student


@dataclass(frozen=True)
class Class:
    run_id: int
    alice: Student  # three units credited from two workers in two versions, three strikes
    bob: Student  # a student of the class who never contributed
    instructor: str  # the owner's worker: a participant of its own ("owner/ID")


def upload(db: Database, run_id: int, worker: int) -> int:
    """One unit claimed and uploaded by ``worker``; its id."""
    lease = claim(db, run_id, worker)
    assert lease is not None and submit(db, run_id, worker, lease["token"]) is not None
    return int(lease["unit_id"])


@pytest.fixture
def taught(db: Database, raw: Raw, db_url: str, class_admin: str) -> Class:
    """A run of two versions whose copies were credited as the coordinator credits them."""
    run_id = new_run(db, units_per_update=5)
    alice, bob = new_student(db_url, class_admin), new_student(db_url, class_admin)
    own = register(db, run_id, "demo")
    with Database(alice.url, max_size=1) as mine:
        laptop, desktop = register(mine, run_id, "laptop"), register(mine, run_id, "desktop")
        # Version 0: one unit of Alice's, two of the instructor's worker (one rejected).
        first = [upload(mine, run_id, laptop), upload(db, run_id, own), upload(db, run_id, own)]
        db.execute("reject_result", unit_id=first[2], worker_id=own, reason="NaN", blame=True)
        publish(db, run_id, 1, unit_ids=first[:2], worker_ids=[laptop, own])
        # Version 1: two more units of Alice's, from both her workers.
        second = [upload(mine, run_id, desktop), upload(mine, run_id, laptop)]
        publish(db, run_id, 2, unit_ids=second, worker_ids=[desktop, laptop])
    raw.strike(run_id, laptop, times=3)
    return Class(run_id, alice, bob, raw.worker(own)["student"])


def publish(db: Database, run_id: int, version: int, **used: list[int]) -> None:
    """What publishing ``version`` does to the credit: the copies of ``used`` credited, the
    run advanced by their images, the next version's units queued."""
    images = len(used["unit_ids"]) * IMAGES_PER_UNIT
    with db.transaction() as tx:
        tx.execute("credit_workers", **used)
        tx.execute("advance_run", run_id=run_id, new_version=version, images=images, complete=False)
        indices = list(range(5 * version, 5 * version + 5))
        tx.execute(
            "insert_units", run_id=run_id, version=version, unit_indices=indices,
            devices=[None] * 5,
        )  # fmt: skip


def test_each_student_has_one_line_whatever_their_workers(db: Database, taught: Class) -> None:
    report = build_report(db, taught.run_id)

    lines = {line.student: line for line in report.students}
    assert list(lines) == [taught.alice.name, taught.instructor, taught.bob.name]  # by images
    alice, own, bob = lines.values()
    assert (alice.workers, alice.units, alice.images) == (2, 3, 3 * IMAGES_PER_UNIT)
    assert alice.share == 0.75 and own.share == 0.25
    assert alice.compute_seconds == pytest.approx(0.03, rel=1e-3)  # 0.01 s per uploaded unit
    assert alice.first_contribution is not None and alice.last_contribution is not None
    assert alice.first_contribution < alice.last_contribution  # versions 0 and 1
    assert (alice.quarantined, alice.strikes, alice.rejected) == (True, 3, 0)
    assert (own.units, own.rejected, own.quarantined) == (1, 1, False)
    assert (bob.workers, bob.units, bob.compute_seconds, bob.first_contribution) == (0, 0, 0, None)


def test_the_run_summary_has_its_images_steps_wall_time_and_latest_fid(
    db: Database, taught: Class
) -> None:
    for version, fid in ((0, 300.0), (1, 120.5)):
        db.execute(
            "insert_evaluation", run_id=taught.run_id, version=version, images_seen=version,
            fid=fid, kid_mean=None, kid_std=None, precision=None, recall=None, num_samples=64,
        )  # fmt: skip

    run = build_report(db, taught.run_id).run

    assert (run.images, run.steps, run.versions) == (4 * IMAGES_PER_UNIT, 2, 2)
    assert (run.fid, run.fid_version) == (120.5, 1)
    assert run.state == "running" and run.completed_at is None and run.wall_seconds > 0


def test_csv_and_json_carry_the_lines_numbers(db: Database, taught: Class) -> None:
    report: Report = build_report(db)  # the run status shows: the only one

    rows = list(csv.DictReader(io.StringIO(report.to_csv())))
    data = json.loads(json.dumps(report.to_json()))

    assert [row["student"] for row in rows] == [line.student for line in report.students]
    assert rows[0]["units"] == "3" and rows[0]["share"] == "0.7500"
    assert rows[0]["quarantined"] == "True" and rows[2]["first_contribution"] == ""
    assert data["run"]["run_id"] == taught.run_id and data["students"][0]["images"] == 192
    first = report.students[0].first_contribution
    assert first is not None and data["students"][0]["first_contribution"] == first.isoformat()


def test_a_students_role_is_refused_the_report_by_the_database(taught: Class) -> None:
    with (
        Database(taught.alice.url, max_size=1) as mine,
        pytest.raises(ReportRefused, match="permission denied for table contributions"),
    ):
        build_report(mine, taught.run_id)


def test_an_unknown_run_is_one_line(db: Database) -> None:
    with pytest.raises(GanError, match="there is no run 99"):
        build_report(db, 99)


def test_the_dashboard_offers_the_instructor_the_same_csv_and_a_student_none(
    db: Database, db_url: str, taught: Class, monkeypatch: pytest.MonkeyPatch
) -> None:
    import streamlit
    from streamlit.testing.v1 import AppTest

    from ganfriends.dashboard import DB_URL_ENV
    from ganfriends.dashboard.launch import APP

    offered: list[object] = []
    button = streamlit.download_button

    def recorded(label: str, data: object, **options: object) -> object:
        offered.append(data)
        return button(label, data, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(streamlit, "download_button", recorded)
    captions = []
    for url in (db_url, taught.alice.url):
        monkeypatch.setenv(DB_URL_ENV, url)
        page = AppTest.from_file(str(APP), default_timeout=30).run()
        captions.append([caption.value for caption in page.caption])

    assert offered == [build_report(db, taught.run_id).to_csv()]  # the instructor's page only
    assert any("report is the instructor's" in caption for caption in captions[1])


def test_shares_are_of_the_credited_images_when_a_step_credits_them_twice(db: Database) -> None:
    # An alternating step credits its images to its D units and again to its G units, while
    # the run counts them once: a share of the run's images would read 200%.
    run_id = new_run(db, units_per_update=2)
    own = register(db, run_id, "demo")
    units = [upload(db, run_id, own), upload(db, run_id, own)]
    with db.transaction() as tx:
        tx.execute("credit_workers", unit_ids=units, worker_ids=[own, own])
        tx.execute("advance_run", run_id=run_id, new_version=1, images=IMAGES_PER_UNIT,
                   complete=False)  # fmt: skip

    [line] = build_report(db, run_id).students

    assert line.images == 2 * IMAGES_PER_UNIT and line.share == 1.0
