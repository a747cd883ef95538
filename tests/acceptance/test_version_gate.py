"""``ganfriends worker`` of an older release than the run accepts: one line, what to install."""

from __future__ import annotations

from pathlib import Path

from ganfriends.db import Database
from tests.acceptance.conftest import run_cli
from tests.integration.queue_helpers import Raw, new_run
from tests.integration.test_version_gate import require


def test_a_worker_older_than_the_run_stops_with_the_release_to_install(
    db_url: str, tmp_path: Path
) -> None:
    # Prepare: a run whose result format moved on past this release.
    with Database(db_url, max_size=1) as db:
        run_id = new_run(db)
    raw = Raw(db_url)
    try:
        require(raw, run_id, "99.0")

        # Execute
        done = run_cli(["worker", "--db", db_url, "--device", "cpu"], tmp_path, timeout=120)

        # Assert: one line naming the release, before the worker loaded any data; no traceback,
        # no worker on the leaderboard.
        assert done.returncode == 2, done.stdout + done.stderr
        assert done.stderr.splitlines() == [
            "error: this run needs ganfriends >= 99.0: pip install -U 'ganfriends>=99.0'"
        ]
        assert "Loaded dataset" not in done.stdout
        assert raw.count("workers") == 0
    finally:
        raw.close()
