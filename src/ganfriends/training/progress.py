"""Progress display for training loops: a live rich bar on a terminal, periodic lines otherwise."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ganfriends.rules.base import UpdateRecord
from ganfriends.step import StepStats

LOG_EVERY = 30.0  # seconds between plain progress lines when the output is not a terminal


class TrainingProgress:
    """Shows step, G/D loss, D(x), D(G(z)) and images/s."""

    def __init__(self, console: Console, *, total_steps: int, start_step: int = 0) -> None:
        self.console = console
        self.total_steps = total_steps
        self._live = console.is_terminal
        self._progress = Progress(
            TextColumn("[bold]step"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[stats]}"),
            console=console,
            disable=not self._live,
        )
        self._task = self._progress.add_task(
            "train", total=total_steps, completed=start_step, stats=""
        )
        self._window_start = time.monotonic()
        self._window_images = 0
        self._last_line = time.monotonic()
        self.images_per_second = 0.0

    def __enter__(self) -> TrainingProgress:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._progress.__exit__(*exc_info)  # the live bar ends, whatever ended the block

    def update(self, step: int, stats: StepStats | UpdateRecord, skipped: int = 0) -> None:
        """Record one finished step (its statistics, or a simulated class step's record)."""
        now = time.monotonic()
        self._window_images += stats.images
        if now - self._window_start >= 2.0:
            self.images_per_second = self._window_images / (now - self._window_start)
            self._window_start, self._window_images = now, 0
        text = (
            f"D {stats.d_loss:.3f} G {stats.g_loss:.3f} "
            f"D(x) {stats.d_real:.2f} D(G(z)) {stats.d_fake:.2f} "
            f"{self.images_per_second:,.0f} img/s"
        )
        if skipped:
            text += f" skipped {skipped}"
        self._progress.update(self._task, completed=step, stats=text)
        if not self._live and (now - self._last_line >= LOG_EVERY or step == self.total_steps):
            self._last_line = now
            self.console.print(f"step {step}/{self.total_steps} {text}")

    def note(self, message: str) -> None:
        """Print a line above the live bar."""
        self.console.print(message)

    def epoch_done(self, epoch: int, epochs: int) -> None:
        """Say an epoch finished (kept above the live bar)."""
        self.console.print(f"epoch {epoch}/{epochs} done")
