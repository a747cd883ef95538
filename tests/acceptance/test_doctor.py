"""``ganfriends doctor`` as a student runs it: the URL from where the worker reads it, one line
per check, exit 0 when a worker would work."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ganfriends.db import Database
from tests.acceptance.conftest import cli_env
from tests.integration.conftest import class_admin, student  # noqa: F401
from tests.integration.doctor_helpers import folder_run, write_images
from tests.integration.student_helpers import Student


def test_doctor_passes_a_student_whose_worker_would_work(
    db_url: str,
    student: Student,  # noqa: F811
    tmp_path: Path,
) -> None:
    images = write_images(tmp_path / "images")
    with Database(db_url) as db:
        folder_run(db, images)
    env = {**cli_env(tmp_path), "GANFRIENDS_DATABASE_URL": student.url}

    done = subprocess.run(
        [sys.executable, "-m", "ganfriends", "doctor", "--device", "cpu", "--dataset-path",
         str(images)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "ok   url", "ok   tls", "ok   login", "ok   rights", "ok   latency", "ok   run",
        "ok   dataset", "ok   device", "ok   download", "ok   unit", "ok   claims",
    ]  # fmt: skip
    assert "from GANFRIENDS_DATABASE_URL" in lines[0]
    assert student.url.split("password=")[-1].split()[0] not in done.stdout  # never the password
