"""The instructor's and the student's pages of the docs site, run as a reader would: every
```bash or ```console block of a page, in order, in one folder, against a real embedded
PostgreSQL, the shell's environment and folder carried from block to block.

A block that cannot run here (it needs a GPU, installs packages, trains for hours) is marked in
the page with ``<!-- not run: why -->`` right before its fence; every other block must run and
succeed. Runs are short because the pages' own commands choose short runs (``--max-iterations``).
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.acceptance.conftest import cli_env
from tests.acceptance.test_students import free_port, gf
from tests.conftest import requires_fashion_mnist
from tests.waiting import wait_until

DOCS = Path(__file__).parents[2] / "docs"
NOT_RUN = re.compile(r"^<!--\s*not run:\s*(\S.*?)\s*-->$")
RUN_LANGUAGES = ("bash", "console")
# The class the student joins: the instructor page's rehearsal, as short.
SHORT_RUN = ["--max-iterations", "2", "--images-per-work-unit", "64", "--workunits-per-update", "2"]


@dataclass(frozen=True)
class Block:
    """One fenced shell block of a page."""

    where: str  # page:line of its fence
    script: str  # what a reader types (a console block's `$ ` lines)
    not_run: str | None  # the marker's reason


def shell_blocks(page: Path) -> list[Block]:
    """The page's ```bash and ```console blocks, in order, each with its `not run` marker."""
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks, previous, i = [], "", 0
    while i < len(lines):
        if not lines[i].startswith("```"):
            previous = lines[i].strip() or previous
            i += 1
            continue
        language, start = lines[i][3:].strip(), i
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        body = lines[start + 1 : end]
        marker = NOT_RUN.match(previous)
        if language in RUN_LANGUAGES:
            if language == "console":
                body = [line[2:] for line in body if line.startswith("$ ")]
            where = f"{page.name}:{start + 1}"
            blocks.append(Block(where, "\n".join(body), marker.group(1) if marker else None))
        else:
            assert marker is None, (
                f"{page.name}:{start + 1}: a `not run` mark on a {language!r} block"
            )
        previous, i = "", end + 1
    return blocks


class Reader:
    """Runs a page's blocks one after another as one shell session would."""

    def __init__(self, folder: Path, env: dict[str, str]) -> None:
        self.folder, self.env = folder, env
        self.state = folder.parent / f"{folder.name}.shell-state"
        self.state.write_text(f"cd {shlex.quote(str(folder))}\n", encoding="utf-8")
        self.groups: list[int] = []  # each block's process group: its `&` jobs outlive it

    def run(self, block: Block) -> None:
        """Run ``block`` where the previous one left off; it must succeed."""
        log = self.folder.parent / f"{self.folder.name}.block.log"
        state = shlex.quote(str(self.state))
        script = (
            f"set -eo pipefail\n. {state}\n{block.script}\n"
            f'{{ export -p; printf "cd %q\\n" "$PWD"; }} > {state}\n'
        )
        with open(log, "w", encoding="utf-8") as out:
            shell = subprocess.Popen(
                ["bash", "--noprofile", "--norc", "-c", script], cwd=self.folder, env=self.env,
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
            self.groups.append(shell.pid)
            code = shell.wait(timeout=120)
        output = log.read_text(encoding="utf-8")
        assert code == 0, f"{block.where} exited {code}:\n{block.script}\n--- output:\n{output}"

    def leftovers(self) -> list[int]:
        """Process groups of earlier blocks that still have a process (a job started with &)."""
        alive = []
        for group in self.groups:
            try:
                os.killpg(group, 0)
            except ProcessLookupError:
                continue
            alive.append(group)
        return alive

    def close(self) -> None:
        """Stop whatever the blocks left running (a test that failed half-way)."""
        for group in self.leftovers():
            os.killpg(group, signal.SIGTERM)


def read_page(page: str, reader: Reader) -> None:
    """Run every unmarked block of ``page``, in order; each must succeed."""
    runnable = [b for b in shell_blocks(DOCS / page) if b.not_run is None]
    assert runnable, f"{page} has no block to run"
    for block in runnable:
        reader.run(block)
    # Jobs a block started with & (the rehearsal's coordinator) end by themselves.
    wait_until(lambda: not reader.leftovers(), f"{page}'s background jobs to end", timeout=60)


@pytest.fixture
def reader_env(tmp_path: Path) -> dict[str, str]:
    """A reader's shell: the `ganfriends` of this checkout on PATH, nothing of the developer's."""
    env = cli_env(tmp_path)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["GANFRIENDS_WORKER_POLL_INTERVAL"] = "0.2"  # a waiting worker sees a new run at once
    return env


@pytest.fixture
def reader(tmp_path: Path, reader_env: dict[str, str]) -> Iterator[Reader]:
    folder = tmp_path / "reader"
    folder.mkdir()
    session = Reader(folder, reader_env)
    yield session
    session.close()


@requires_fashion_mnist
def test_the_instructor_page_runs_as_written(reader: Reader, tmp_path: Path) -> None:
    # The page's `db start` serves the class from this test's own data directory.
    reader.env["GANFRIENDS_PG_DIR"] = str(tmp_path / "instructor-pg")
    try:
        read_page("instructor.md", reader)
    finally:
        gf(["db", "stop"], reader.env, tmp_path)  # a page that failed before its `db stop`


def start_run(env: dict[str, str], folder: Path) -> subprocess.Popen[str]:
    """The instructor's short run (a coordinator in the background), once it has started."""
    log_file = folder / "coordinator.log"
    with open(log_file, "w", encoding="utf-8") as log:
        coordinator = subprocess.Popen(
            [sys.executable, "-m", "ganfriends", "coordinator", *SHORT_RUN],
            cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip

    def started() -> bool:
        assert coordinator.poll() is None, log_file.read_text(encoding="utf-8")
        return "new run" in log_file.read_text(encoding="utf-8")

    try:
        wait_until(started, "the class's run to start", timeout=60)
    except BaseException:
        coordinator.kill()
        coordinator.wait(timeout=30)
        raise
    return coordinator


@requires_fashion_mnist
def test_the_student_page_runs_as_written(
    reader: Reader, reader_env: dict[str, str], tmp_path: Path
) -> None:
    # The instructor's side, as the instructor page does it: a class database on 127.0.0.1, a
    # student alice whose URL file is in the student's folder, and a short run going.
    instructor = {**reader_env, "GANFRIENDS_PG_DIR": str(tmp_path / "class-pg")}
    started = gf(["db", "start", "--listen", "127.0.0.1", "--port", str(free_port())],
                 instructor, tmp_path)  # fmt: skip
    assert started.returncode == 0, started.stderr
    coordinator = None
    try:
        added = gf(["students", "add", "alice", "--output", str(reader.folder / "alice.txt")],
                   instructor, tmp_path)  # fmt: skip
        assert added.returncode == 0, added.stderr
        coordinator = start_run(instructor, tmp_path)
        # The student's machine has no class database of its own.
        reader.env["GANFRIENDS_PG_DIR"] = str(tmp_path / "no-server-here")
        read_page("student.md", reader)
        assert coordinator.wait(timeout=60) == 0, (tmp_path / "coordinator.log").read_text()
    finally:
        if coordinator is not None and coordinator.poll() is None:
            coordinator.kill()
            coordinator.wait(timeout=30)
        gf(["db", "stop"], instructor, tmp_path)
