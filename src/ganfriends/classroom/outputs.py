"""What the coordinator writes for people to look at, through the writer every run uses
(``training/writer.py``: sample grids, a train-local-format checkpoint, scores, the experiment
log, the Hub), and what only a class run adds: each grid and each score in the database, where
the dashboard reads them.

The writer's x-axis is the optimizer step: version v belongs to step ceil(v / versions per step),
so an alternating step's D version and G version, its grid and its scores share one step. The
database keeps versions (``insert_sample``, ``insert_evaluation``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from ganfriends.classroom.state import RunState
from ganfriends.config import Config
from ganfriends.db import Database
from ganfriends.errors import GanError
from ganfriends.hub import open_publisher
from ganfriends.tracking import open_log
from ganfriends.training.setup import scoring_evaluator
from ganfriends.training.writer import RunWriter

if TYPE_CHECKING:
    from ganfriends.evaluation import Evaluator


def step_of(state: RunState) -> int:
    """The optimizer step ``state``'s version belongs to (the step its versions complete)."""
    return -(-state.version // state.plan.versions_per_step)


class CoordinatorOutputs:
    """Grids, checkpoint, scores, experiment log and Hub of the coordinator's run, under
    ``output_dir``; the grids and scores also in the database."""

    def __init__(self, db: Database, config: Config, output_dir: Path, console: Console) -> None:
        self.db = db
        self.config = config
        self.output_dir = output_dir
        self.console = console
        self._writer: RunWriter | None = None
        self._state: RunState | None = None

    @property
    def writer(self) -> RunWriter:
        """The run's writer (once :meth:`open`)."""
        if self._writer is None:
            raise RuntimeError("the coordinator's outputs are not open")
        return self._writer

    def open(self, state: RunState) -> None:
        """Start writing ``state``'s run: the Hub first (a missing huggingface_hub is an error
        before anything), then the experiment log and (``--eval-interval``) the evaluator."""
        config, run = self.config, state.run
        hub = open_publisher(config.huggingface, self.console)
        interval = config.coordinator.eval_interval
        try:
            evaluator = self.evaluator(state) if interval else None
            log = open_log(config.tracking, self.output_dir, f"run-{state.run_id}")
        except BaseException:
            if hub is not None:
                hub.close()
            raise
        name = run.fingerprint.get("name")
        self._state = state
        self._writer = RunWriter(
            self.output_dir, state.server, run.model_config, run.stored_config, state.plan.seed,
            f"class run {state.run_id} ({run.mode})", None if name is None else str(name),
            log=log, hub=hub, evaluator=evaluator, eval_interval=interval, extra=self,
            step=step_of(state), images_seen=state.server.images_seen,
        )  # fmt: skip

    def evaluator(self, state: RunState) -> Evaluator:
        """Scores the run's generator against its dataset's held-out images (prepared once)."""
        return scoring_evaluator(
            self.config, dataset=state.run.config.data.dataset,
            image_size=state.run.model_config.image_size, seed=state.plan.seed, device="cpu",
            console=self.console,
        )  # fmt: skip

    def published(self, state: RunState, values: Mapping[str, float]) -> None:
        """A published version's values, at its optimizer step; a whole step due for scoring
        is scored."""
        whole_step = state.version % state.plan.versions_per_step == 0
        self._follow(state).record(
            {"step": step_of(state), "images_seen": state.server.images_seen, **values},
            whole_step=whole_step,
        )

    def write(self, state: RunState) -> None:
        """The grid and ``latest.pt`` of a whole step."""
        writer = self._follow(state)
        writer.samples(f"version_{state.version:06d}")
        writer.checkpoint(epoch=int(state.plan.epochs_done(state.version)))

    def close(self) -> None:
        """Push the newest state to the Hub if it was not (a bounded wait); finish the log."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _follow(self, state: RunState) -> RunWriter:
        # A coordinator rebuilds its state from the database after an outage: write that one.
        writer = self.writer
        self._state = state
        writer.models = state.server
        writer.at(step_of(state), state.server.images_seen)
        return writer

    # ------------------------------------------------------- what only a class run writes

    def grid(self, path: Path) -> None:
        """The same PNG in the database: the dashboard runs on any machine that reaches it."""
        assert self._state is not None
        try:
            self.db.execute("insert_sample", run_id=self._state.run_id,
                            version=self._state.version, png=path.read_bytes())  # fmt: skip
        except GanError as exc:  # a DatabaseError: a grid the dashboard misses must not stop us
            self.console.print(f"[yellow]sample grid not stored in the database: {exc}[/]")

    def scores(self, scores: Mapping[str, float]) -> None:
        """The version's scores in the database, and a line saying them."""
        state = self._state
        assert state is not None
        self.db.execute(
            "insert_evaluation",
            run_id=state.run_id,
            version=state.version,
            images_seen=state.server.images_seen,
            fid=scores["fid"],
            kid_mean=scores["kid_mean"],
            kid_std=scores["kid_std"],
            precision=scores["precision"],
            recall=scores["recall"],
            num_samples=int(scores["num_samples"]),
        )
        self.console.print(
            f"version {state.version}: FID {scores['fid']:.2f}, KID {scores['kid_mean']:.3f}, "
            f"precision {scores['precision']:.2f}, recall {scores['recall']:.2f}"
        )
