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
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

# Small enough to be quick, large enough that a unit takes a noticeable moment to compute.
TINY = ["--g-features", "8", "--d-features", "8", "--latent-dim", "16"]


@dataclass
class Proc:
    """A CLI process whose output is collected line by line."""

    name: str
    popen: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    _queue: queue.Queue[str | None] = field(default_factory=queue.Queue)

    def start_reader(self) -> None:
        def read() -> None:
            assert self.popen.stdout is not None
            for line in self.popen.stdout:
                self._queue.put(line.rstrip("\n"))
            self._queue.put(None)

        threading.Thread(target=read, daemon=True).start()

    def wait_for(self, pattern: str, timeout: float = 120.0) -> str:
        """Block until an output line matches ``pattern``; return it."""
        for line in self.lines:
            if re.search(pattern, line):
                return line
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                received = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            if received is None:
                raise AssertionError(
                    f"{self.name} exited before printing {pattern!r}:\n{self.output}"
                )
            self.lines.append(received)
            if re.search(pattern, received):
                return received
        raise AssertionError(f"{self.name} did not print {pattern!r} in {timeout}s:\n{self.output}")

    def finish(self, timeout: float = 120.0) -> int:
        """Wait for exit and collect the rest of the output."""
        code = self.popen.wait(timeout=timeout)
        while True:
            try:
                line = self._queue.get(timeout=5)
            except queue.Empty:
                break
            if line is None:
                break
            self.lines.append(line)
        return code

    @property
    def output(self) -> str:
        return "\n".join(self.lines)


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


def final_weights(checkpoint: Path) -> Iterator[tuple[str, torch.Tensor]]:
    """(name, tensor) of G then D in a coordinator checkpoint."""
    data = torch.load(checkpoint, weights_only=True)
    for key in ("generator_state_dict", "discriminator_state_dict"):
        for name, tensor in data[key].items():
            yield f"{key}.{name}", tensor
