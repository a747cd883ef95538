"""One writer for what every run leaves behind: ``train-local``, ``simulate`` and the class
coordinator write through it.

Under ``<output>``: ``samples/<tag>.png`` and ``samples/latest.png`` (an 8x8 grid from the run's
fixed noise), ``checkpoints/*.pt`` (:mod:`.checkpoint`), ``history.csv`` and ``curves.png``
(:mod:`.history`; a class run keeps its history in its database instead). Besides: FID and the
other scores, the experiment log (``--logger``: TensorBoard, MLflow) and the Hugging Face Hub.

Everything is placed on ONE x-axis, the optimizer step, with the images seen beside it: a class
run of the alternating rule publishes two versions per step, and logs both, its grids and its
scores at that step, as ``train-local`` logs its steps.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import torch

from ganfriends import rng
from ganfriends.grid import save_grid
from ganfriends.hub import HubPublisher, take_snapshot, training_metadata
from ganfriends.hub.files import HubSnapshot
from ganfriends.models import ModelConfig
from ganfriends.rules.base import ServerState
from ganfriends.tracking import ExperimentLog
from ganfriends.training.checkpoint import save_checkpoint
from ganfriends.training.history import HistoryWriter, plot_curves
from ganfriends.training.setup import NUM_SAMPLES

if TYPE_CHECKING:
    from ganfriends.evaluation import Evaluator

Row = Mapping[str, float | int]


class ExtraOutputs(Protocol):
    """What a driver writes besides the writer's outputs (a class run: into its database)."""

    def grid(self, path: Path) -> None:
        """A sample grid was written at ``path``."""

    def scores(self, scores: Mapping[str, float]) -> None:
        """The generator was scored (``num_samples`` included)."""


@dataclass(eq=False)
class RunWriter:
    """Grids, checkpoints, history, scores, experiment log and Hub of one run.

    ``models`` holds the networks and optimizers written (a driver that rebuilds its state points
    it at the new one). ``enabled`` False (every process of a torchrun job but rank 0) writes
    nothing: the one place where a job's files are gated.
    """

    out_dir: Path
    models: ServerState
    model_config: ModelConfig
    run_config: dict[str, Any]  # stored in checkpoints and logged as params (secrets masked)
    seed: int  # the run's seed: the fixed noise of the grids derives from it
    source: str  # who trained, for the Hub ("train-local", "class run 3 (sync)")
    dataset: str | None = None
    log: ExperimentLog = field(default_factory=ExperimentLog)
    hub: HubPublisher | None = None
    history: HistoryWriter | None = None  # None: no history.csv nor curves.png
    evaluator: Evaluator | None = None
    eval_interval: int | None = None  # score every N steps (at whole steps)
    extra: ExtraOutputs | None = None
    enabled: bool = True
    step: int = 0  # the x-axis: optimizer steps taken
    images_seen: int = 0

    def __post_init__(self) -> None:
        # The newest value of each measure (losses, scores, epoch), for the Hub's metadata.
        self.latest: dict[str, float | int] = {}
        self.fixed_noise = rng.latent_noise(
            NUM_SAMPLES, self.model_config.latent_dim, self.seed, rng.FIXED_NOISE
        )
        if self.enabled:
            self.log.params(self.run_config)

    def at(self, step: int, images_seen: int) -> None:
        """Place the next outputs at ``step`` (a resumed or reloaded run)."""
        self.step, self.images_seen = step, images_seen

    def record(self, row: Row, *, whole_step: bool = True) -> dict[str, float]:
        """One step's values, ``step`` and ``images_seen`` among them (a class run records each
        version: both versions of an alternating step at their step; ``whole_step`` False for
        the first). A whole step due for scoring is scored first, its scores joining the row.
        Written to ``history.csv`` and the experiment log; returns the scores (empty if none)."""
        if not self.enabled:
            return {}
        self.at(int(row["step"]), int(row["images_seen"]))
        scores = self._score() if whole_step and self._scoring_due() else {}
        values = {**row, **scores}
        if self.history is not None:
            self.history.append(values)
        self.log.metrics(self.step, {k: v for k, v in values.items() if k != "step"})
        # A value a version does not measure is NaN: keep the last measured one.
        self.latest.update({k: v for k, v in values.items() if v == v})
        return scores

    def _scoring_due(self) -> bool:
        return (
            self.evaluator is not None
            and self.eval_interval is not None
            and self.step % self.eval_interval == 0
        )

    def _score(self) -> dict[str, float]:
        assert self.evaluator is not None
        scores = self.evaluator.evaluate(self.models.generator)
        if self.extra is not None:
            self.extra.scores(scores)
        return {k: v for k, v in scores.items() if k != "num_samples"}

    def samples(self, tag: str) -> Path | None:
        """A grid from the fixed noise as ``samples/<tag>.png`` and ``samples/latest.png``, the
        curves so far, and the grid to the experiment log and the Hub, at the current step."""
        if not self.enabled:
            return None
        generator = self.models.generator
        device = next(generator.parameters()).device
        generator.eval()
        with torch.no_grad():
            fakes = generator(self.fixed_noise.to(device))
        generator.train()
        samples = self.out_dir / "samples"
        grid = save_grid(fakes, samples / f"{tag}.png", nrow=8)
        save_grid(fakes, samples / "latest.png", nrow=8)
        curves = None
        if self.history is not None:
            self.history.flush()  # the curves are drawn from the file
            curves = plot_curves(self.history.path, self.out_dir / "curves.png")
        self.log.image(self.step, tag, grid)
        if self.extra is not None:
            self.extra.grid(grid)
        if self.hub is not None:
            self.hub.offer(self._hub_snapshot(grid, curves))
        return grid

    def _hub_snapshot(self, grid: Path, curves: Path | None) -> HubSnapshot:
        stats = {**self.latest, "images_seen": self.images_seen}
        meta = training_metadata(self.source, self.dataset, self.step, stats, self.model_config)
        return take_snapshot(self.models.generator, self.models.discriminator, grid, curves, meta)

    @property
    def latest_checkpoint(self) -> Path:
        """``checkpoints/latest.pt``: what ``--resume``, ``generate`` and ``eval`` read."""
        return self.out_dir / "checkpoints" / "latest.pt"

    def checkpoint(self, *, epoch: int, path: Path | None = None) -> None:
        """A checkpoint of the run at the current step (``latest.pt`` unless ``path``)."""
        if not self.enabled:
            return
        if self.history is not None:
            self.history.flush()  # a checkpoint never runs ahead of its history
        models = self.models
        save_checkpoint(
            path or self.latest_checkpoint,
            generator=models.generator,
            discriminator=models.discriminator,
            optimizer_g=models.optimizer_g,
            optimizer_d=models.optimizer_d,
            epoch=epoch,
            step=self.step,
            images_seen=self.images_seen,
            model_config=self.model_config,
            run_config=self.run_config,
        )

    def close(self) -> None:
        """The Hub gets the newest state (a bounded wait); the history is closed; the
        experiment log keeps the last checkpoint and is finished."""
        if self.hub is not None:
            self.hub.close()
        if not self.enabled:
            return
        if self.history is not None:
            self.history.close()
        if self.latest_checkpoint.exists():
            self.log.artifact(self.latest_checkpoint)
        self.log.close()
