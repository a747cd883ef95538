"""Drive real coordinator and worker processes (the CLI) against a real PostgreSQL."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tests.waiting import wait_until

# Small enough to be quick, large enough that a unit takes a noticeable moment to compute.
TINY = ["--g-features", "8", "--d-features", "8", "--latent-dim", "16"]


@dataclass
class Proc:
    """A CLI process whose output is collected line by line."""

    name: str
    popen: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    _queue: queue.Queue[str | None] = field(default_factory=queue.Queue)
    _ended: bool = False  # the reader saw the end of the output

    def start_reader(self) -> None:
        def read() -> None:
            assert self.popen.stdout is not None
            for line in self.popen.stdout:
                self._queue.put(line.rstrip("\n"))
            self._queue.put(None)

        threading.Thread(target=read, daemon=True).start()

    def _drain(self) -> bool:
        """Move the lines read so far into ``lines``; whether the output has ended."""
        while not self._ended:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                break
            if line is None:
                self._ended = True
            else:
                self.lines.append(line)
        return self._ended

    def printed(self, pattern: str) -> str | None:
        """The first output line so far that matches ``pattern``, or None."""
        self._drain()
        return next((line for line in self.lines if re.search(pattern, line)), None)

    def wait_for(self, pattern: str, timeout: float = 120.0) -> str:
        """Block until an output line matches ``pattern``; return it."""

        def matched() -> str | None:
            line = self.printed(pattern)
            if line is None and self._ended:
                raise AssertionError(
                    f"{self.name} exited before printing {pattern!r}:\n{self.output}"
                )
            return line

        return wait_until(
            matched, lambda: f"{self.name} to print {pattern!r}:\n{self.output}", timeout=timeout
        )

    def finish(self, timeout: float = 120.0) -> int:
        """Wait for exit and collect the rest of the output."""
        code = self.popen.wait(timeout=timeout)
        wait_until(self._drain, f"the end of {self.name}'s output (a child holding it?)")
        return code

    @property
    def output(self) -> str:
        return "\n".join(self.lines)


def wait_for_line(proc: subprocess.Popen[str], text: str, timeout: float = 120) -> list[str]:
    """Lines of ``proc``'s output up to the first containing ``text``, within ``timeout`` seconds
    even if ``proc`` goes silent (a read blocks until a line comes, so a thread does the reading
    and this one waits on it with a deadline)."""
    stdout = proc.stdout
    assert stdout is not None
    seen: list[str] = []
    ended = threading.Event()

    def read() -> None:
        # Stops right after the line looked for: the rest stays in the pipe for communicate().
        for line in stdout:
            seen.append(line)
            if text in line:
                return
        ended.set()  # the process closed its output

    # On a timeout the reader stays blocked until the caller's ``finally`` kills the process.
    reader = threading.Thread(target=read, daemon=True, name="wait-for-line")
    reader.start()

    def printed() -> bool:
        if any(text in line for line in seen):
            return True
        if ended.is_set():
            raise AssertionError(f"exited before printing {text!r}:\n{''.join(seen)}")
        return False

    wait_until(printed, lambda: f"{text!r} in the output:\n{''.join(seen)}", timeout=timeout)
    reader.join()  # returns at once: the reader stopped after this line
    return seen


class ClassRoom:
    """Starts coordinators and workers on one database; kills whatever is left at the end."""

    def __init__(self, db_url: str, workdir: Path) -> None:
        self.db_url = db_url
        self.workdir = workdir
        self.data_dir = workdir / "data_dir"
        self.procs: list[Proc] = []
        self.extra_env: dict[str, str] = {}  # set for the processes started from now on

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GANFRIENDS_")}
        env.update(
            PYTHONUNBUFFERED="1",
            OMP_NUM_THREADS="1",
            GANFRIENDS_DATA_DIR=str(self.data_dir),
            GANFRIENDS_PG_DIR=str(self.workdir / "no-embedded-server"),
        )
        env.update(self.extra_env)
        return env

    def start(self, name: str, args: list[str], db_url: str | None = None) -> Proc:
        """``ganfriends ARGS`` against the room's database (as ``db_url``'s role if given)."""
        popen = subprocess.Popen(
            [sys.executable, "-m", "ganfriends", *args, "--db", db_url or self.db_url],
            cwd=self.workdir,
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        proc = Proc(name, popen)
        proc.start_reader()
        self.procs.append(proc)
        return proc

    def start_python(self, name: str, code: str) -> Proc:
        """``python -c code`` in the room's environment, its output collected."""
        popen = subprocess.Popen(
            [sys.executable, "-c", code], cwd=self.workdir, env=self.env(),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        proc = Proc(name, popen)
        proc.start_reader()
        self.procs.append(proc)
        return proc

    def coordinator(self, out: str, *args: str) -> Proc:
        return self.start(f"coordinator {out}", ["coordinator", "--output-dir", out, *TINY, *args])

    def worker(self, name: str, *args: str, db_url: str | None = None) -> Proc:
        return self.start(
            f"worker {name}", ["worker", "--name", name, "--device", "cpu", *args], db_url
        )

    def small_run(self, iterations: int, *args: str) -> tuple[Proc, Proc]:
        """A run "run" of ``iterations`` steps of two 64-image units, trained to its end by one
        worker; its coordinator and worker."""
        coordinator = self.coordinator(
            "run", "--max-iterations", str(iterations), "--images-per-work-unit", "64",
            "--workunits-per-update", "2", "--micro-batch", "32", *args,
        )  # fmt: skip
        worker = self.worker("steady")
        assert coordinator.finish() == 0, coordinator.output
        assert worker.finish() == 0, worker.output
        return coordinator, worker

    def status(self) -> dict[str, Any]:
        """``ganfriends status --json`` on this room's database."""
        result = subprocess.run(
            [sys.executable, "-m", "ganfriends", "status", "--json", "--db", self.db_url],
            capture_output=True, text=True, env=self.env(), check=True,
        )  # fmt: skip
        status: dict[str, Any] = json.loads(result.stdout)
        return status

    def close(self) -> None:
        for proc in self.procs:
            if proc.popen.poll() is None:
                proc.popen.send_signal(signal.SIGKILL)
                proc.popen.wait()
            if proc.popen.stdout is not None:
                proc.popen.stdout.close()


def one_worker_run(room: ClassRoom, out: str, run: list[str], *worker_args: str) -> Proc:
    """Run ``out`` to its end with one worker, nothing going wrong; its coordinator."""
    coordinator = room.coordinator(out, *run)
    room.worker("solo", *worker_args)
    assert coordinator.finish() == 0, coordinator.output
    return coordinator


def crashed_run(
    room: ClassRoom,
    out: str,
    run: list[str],
    crash_at: str,
    workers: tuple[str, ...] = ("steady",),
    late: tuple[str, ...] = (),
    worker_args: tuple[str, ...] = (),
) -> None:
    """Run ``out`` as a new run with a worker killed mid-unit beside ``workers``, and the
    coordinator killed once it prints ``crash_at`` and restarted (``late`` workers join while it
    is down): it must still end."""
    coordinator = room.coordinator(out, *run, "--new-run")
    victim = room.worker("victim", *worker_args)
    for name in workers:
        room.worker(name, *worker_args)
    victim.wait_for("Processing work unit")
    victim.popen.send_signal(signal.SIGKILL)
    coordinator.wait_for(crash_at)
    coordinator.popen.send_signal(signal.SIGKILL)
    coordinator.popen.wait()
    for name in late:
        room.worker(name, *worker_args)
    restarted = room.coordinator(out, *run)
    restarted.wait_for("resuming run")
    assert restarted.finish() == 0, restarted.output


def simulated(room: ClassRoom, out: str, run: list[str]) -> None:
    """``ganfriends simulate`` of ``run`` (the tiny model, on the CPU) into ``out``."""
    result = subprocess.run(
        [sys.executable, "-m", "ganfriends", "simulate", *run, *TINY, "--device", "cpu",
         "--output-dir", out],
        cwd=room.workdir, env=room.env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def assert_same_model(
    workdir: Path, ours: str, theirs: str, *, rtol: float = 0.0, atol: float = 0.0
) -> None:
    """Runs ``ours`` and ``theirs`` (output folders in ``workdir``) end with the same G and D,
    BatchNorm buffers included: bit for bit unless tolerances are given."""
    a = dict(final_weights(workdir / ours / "checkpoints" / "latest.pt"))
    b = dict(final_weights(workdir / theirs / "checkpoints" / "latest.pt"))
    assert a.keys() == b.keys()
    for name, tensor in b.items():
        torch.testing.assert_close(a[name], tensor, rtol=rtol, atol=atol, msg=name)


def final_weights(checkpoint: Path) -> Iterator[tuple[str, torch.Tensor]]:
    """(name, tensor) of G then D in a coordinator checkpoint."""
    data = torch.load(checkpoint, weights_only=True)
    for key in ("generator_state_dict", "discriminator_state_dict"):
        for name, tensor in data[key].items():
            yield f"{key}.{name}", tensor
