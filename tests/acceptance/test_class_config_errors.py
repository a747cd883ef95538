"""A plain configuration mistake in class mode is a one-line error, as it is in ``train-local``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.acceptance.conftest import cli_env, run_cli
from tests.conftest import requires_fashion_mnist


@requires_fashion_mnist
def test_a_coordinator_asked_for_lsgan_on_64px_data_says_so_in_one_line(
    db_url: str, workdir: Path
) -> None:
    # The coordinator connects before it reads the dataset (a running run may be resumed, and a
    # resumed run keeps its own model), so the mistake is found with a database at hand.
    result = run_cli(
        ["coordinator", "--db", db_url, "--output-dir", "run", "--dataset", "fashion-mnist",
         "--model", "lsgan", "--image-size", "64"],
        workdir,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    assert "unexpected" not in lines[0]  # the CLI's funnel for bugs, not for user mistakes
    assert "32x32" in lines[0] and "64" in lines[0]  # what the model needs, what it was given
    # Refused before anything was stored: no run for a worker to join.
    status = subprocess.run(
        [sys.executable, "-m", "ganfriends", "status", "--json", "--db", db_url],
        capture_output=True, text=True, env=cli_env(workdir), timeout=120,
    )  # fmt: skip
    assert "holds no run" in status.stderr, status.stdout + status.stderr
