"""A class of 30 from a roster and its grading report, through the real CLI: the instructor runs
the roster command twice at once (neither fails, each student is created once), hands out the
URL files, and after some credited work writes the report as CSV."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

from ganfriends.db import Database
from tests.acceptance.conftest import cli_env
from tests.integration.conftest import class_admin  # noqa: F401 (the fixture)
from tests.integration.queue_helpers import IMAGES_PER_UNIT, claim, new_run, register, submit

CLASS_SIZE = 30


def gf(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "ganfriends", *args], cwd=cwd, env=cli_env(cwd),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def finished(process: subprocess.Popen[str]) -> str:
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    return out


def test_a_roster_of_30_gets_its_urls_and_a_csv_report(
    db_url: str,
    class_admin: str,  # noqa: F811 (the fixture)
    tmp_path: Path,
) -> None:
    names = [f"s{os.getpid()}_{i:02d}" for i in range(CLASS_SIZE)]
    roster = tmp_path / "class.csv"
    roster.write_text("name,email\n" + "".join(f"{n},{n}@school.org\n" for n in names))

    add = ["students", "add", "--db", class_admin, "--roster", str(roster), "--urls-dir", "urls"]
    outputs = [finished(p) for p in [gf(add, tmp_path), gf(add, tmp_path)]]

    said = " ".join(outputs)
    assert f"added {CLASS_SIZE} student(s)" in said and "already students" in said
    urls = tmp_path / "urls"
    assert sorted(p.stem for p in urls.iterdir()) == names
    assert urls.stat().st_mode & 0o777 == 0o700
    assert {p.stat().st_mode & 0o777 for p in urls.iterdir()} == {0o600}

    # A student joins with the URL from their file; the coordinator credits one unit of theirs.
    first = names[0]
    with Database(db_url, max_size=1) as db:
        run_id = new_run(db, units_per_update=2)
        with Database((urls / f"{first}.txt").read_text().strip(), max_size=1) as theirs:
            worker = register(theirs, run_id, "laptop")
            lease = claim(theirs, run_id, worker)
            assert lease is not None and submit(theirs, run_id, worker, lease["token"])
        db.execute("credit_workers", unit_ids=[lease["unit_id"]], worker_ids=[worker])

    printed = finished(gf(["report", "--db", db_url, "--csv", "report.csv"], tmp_path))

    assert f"wrote run {run_id}'s report ({CLASS_SIZE} students) to report.csv" in printed
    [line] = [line for line in printed.splitlines() if line.startswith(first)]
    assert line.split()[:3] == [first, "1", str(IMAGES_PER_UNIT)]  # the table: as plain text

    rows = list(csv.DictReader((tmp_path / "report.csv").read_text().splitlines()))
    assert len(rows) == CLASS_SIZE  # every student, the ones who did nothing too
    assert (rows[0]["student"], rows[0]["images"]) == (first, str(IMAGES_PER_UNIT))
    assert {row["units"] for row in rows[1:]} == {"0"}
