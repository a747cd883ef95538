"""Acceptance tests run the real ``ganfriends`` CLI in subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from PIL import Image

from tests.acceptance.class_harness import ClassRoom

# Real PostgreSQL for the class-training acceptance tests: the integration tier's fixtures.
from tests.integration.conftest import db_url, pg_server, template_db  # noqa: F401
from tests.waiting import wait_until

TINY_MODEL = ["--g-features", "8", "--d-features", "8", "--latent-dim", "16"]


def cli_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GANFRIENDS_")}
    env["GANFRIENDS_DATA_DIR"] = str(tmp_path / "data_dir")
    env["PYTHONUNBUFFERED"] = "1"
    env["OMP_NUM_THREADS"] = "1"
    return env


def run_cli(args: list[str], cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """Run ``python -m ganfriends ARGS`` in ``cwd`` and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "ganfriends", *args],
        cwd=cwd,
        env=cli_env(cwd),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def resumed(run: str, steps: int, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``train-local --resume`` of the checkpoint in ``run`` up to ``steps`` steps, into ``run``
    (its other options come from the checkpoint); it must succeed."""
    done = run_cli(
        ["train-local", "--resume", f"{run}/checkpoints/latest.pt", "--output-dir", run,
         "--max-steps", str(steps)], cwd,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done


def wait_for_history_rows(history: Path, rows: int, proc: subprocess.Popen[str]) -> None:
    """Wait until a run's ``history.csv`` holds ``rows`` lines (its header counts): steps done."""

    def written() -> bool:
        if proc.poll() is not None:
            raise AssertionError(
                f"the run exited ({proc.returncode}) before {rows} lines in {history}"
            )
        return history.is_file() and len(history.read_text().splitlines()) >= rows

    wait_until(written, f"{rows} lines in {history}", timeout=120, interval=0.2)


def load_checkpoint(path: Path) -> dict[str, object]:
    """A train-local checkpoint, as ``weights_only`` loading gives it."""
    data: dict[str, object] = torch.load(path, weights_only=True)
    return data


def train_resume_generate(
    workdir: Path, train: list[str], steps: int, resumed_steps: int, tiles: int
) -> tuple[subprocess.CompletedProcess[str], dict[str, object]]:
    """``train`` for ``steps`` steps into ``run``, resume it to ``resumed_steps`` (the options
    come from the checkpoint), then draw a grid of ``tiles`` x ``tiles`` 32 px images from it.
    The first run's result and its checkpoint."""
    first = run_cli([*train, "--output-dir", "run", "--max-steps", str(steps)], workdir)
    assert first.returncode == 0, first.stderr
    latest = workdir / "run" / "checkpoints" / "latest.pt"
    checkpoint = load_checkpoint(latest)
    assert checkpoint["step"] == steps

    resumed("run", resumed_steps, workdir)
    assert load_checkpoint(latest)["step"] == resumed_steps

    generated = run_cli(
        ["generate", "--checkpoint", str(latest), "--num", str(tiles * tiles), "--out", "grid.png"],
        workdir,
    )
    assert generated.returncode == 0, generated.stderr
    with Image.open(workdir / "grid.png") as grid:
        assert grid.size == (2 + tiles * 34, 2 + tiles * 34)  # tiles of 32 px + 2 px padding
    return first, checkpoint


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def room(db_url: str, tmp_path: Path) -> Iterator[ClassRoom]:  # noqa: F811 (the fixture)
    """Coordinators and workers on this test's database; whatever is left is killed after."""
    classroom = ClassRoom(db_url, tmp_path)
    yield classroom
    classroom.close()
