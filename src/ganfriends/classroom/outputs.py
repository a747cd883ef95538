"""What the coordinator writes for people to look at: sample grids (on disk, in the database
for the dashboard, in the experiment log), a train-local-format checkpoint, and FID scores."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
from rich.console import Console

from ganfriends.classroom.state import RunState
from ganfriends.config import Config
from ganfriends.db import Database
from ganfriends.errors import GanError
from ganfriends.grid import save_grid
from ganfriends.hub import HubPublisher, open_publisher, take_snapshot, training_metadata
from ganfriends.hub.files import HubSnapshot
from ganfriends.tracking import ExperimentLog
from ganfriends.training.checkpoint import save_checkpoint

if TYPE_CHECKING:
    from ganfriends.evaluation import Evaluator


class CoordinatorOutputs:
    """Grids, checkpoint and scores of the coordinator's run, under ``output_dir``."""

    def __init__(self, db: Database, config: Config, output_dir: Path, console: Console) -> None:
        self.db = db
        self.config = config
        self.output_dir = output_dir
        self.console = console
        self.log = ExperimentLog()  # --logger: set for the run by the coordinator's loop
        self.hub: HubPublisher | None = None  # the huggingface section: set by open_hub
        self.latest: dict[str, float] = {}  # the newest version's losses and FID, for the Hub

    def open_hub(self) -> None:
        """Start pushing to the Hugging Face Hub if the config says so."""
        self.hub = open_publisher(self.config.huggingface, self.console)

    def close_hub(self) -> None:
        """Push the newest state if it was not, with a bounded wait."""
        if self.hub is not None:
            self.hub.close()
            self.hub = None

    def metrics(self, step: int, values: dict[str, float]) -> None:
        """A version's statistics, logged at optimizer step ``step``: to the experiment log, and
        remembered for the Hub."""
        self.log.metrics(step, values)
        self.latest.update(values)

    def evaluator(self, state: RunState) -> Evaluator:
        """Scores the run's generator against its dataset's held-out images (prepared once)."""
        from ganfriends.evaluation import Evaluator

        return Evaluator.for_dataset(
            state.run.config.data.dataset,
            dataset_path=self.config.data.dataset_path,
            data_dir=self.config.data.data_dir,
            image_size=state.run.model_config.image_size,
            num_samples=self.config.training.eval_samples,
            seed=state.plan.seed,
            device="cpu",
            progress=self.console.print,
        )

    def evaluate(self, state: RunState, evaluator: Evaluator) -> None:
        """Score the current version and record it in the database."""
        scores = evaluator.evaluate(state.server.generator)
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
        self.metrics(state.version, {k: v for k, v in scores.items() if k != "num_samples"})
        self.console.print(
            f"version {state.version}: FID {scores['fid']:.2f}, KID {scores['kid_mean']:.3f}, "
            f"precision {scores['precision']:.2f}, recall {scores['recall']:.2f}"
        )

    def write(self, state: RunState, fixed_noise: torch.Tensor) -> None:
        """Sample grid and a train-local-format checkpoint."""
        server = state.server
        generator = server.generator
        generator.eval()
        with torch.no_grad():
            fakes = generator(fixed_noise)
        generator.train()
        samples = self.output_dir / "samples"
        grid = save_grid(fakes, samples / f"version_{state.version:06d}.png", nrow=8)
        save_grid(fakes, samples / "latest.png", nrow=8)
        self.log.image(state.version, grid.stem, grid)
        try:
            # The same PNG in the database: the dashboard runs on any machine that reaches it.
            self.db.execute(
                "insert_sample", run_id=state.run_id, version=state.version, png=grid.read_bytes()
            )
        except GanError as exc:  # a DatabaseError: a grid the dashboard misses must not stop us
            self.console.print(f"[yellow]sample grid not stored in the database: {exc}[/]")
        save_checkpoint(
            self.output_dir / "checkpoints" / "latest.pt",
            generator=server.generator,
            discriminator=server.discriminator,
            optimizer_g=server.optimizer_g,
            optimizer_d=server.optimizer_d,
            epoch=int(state.plan.epochs_done(state.version)),
            step=state.version // state.plan.versions_per_step,
            images_seen=state.server.images_seen,
            model_config=state.run.model_config,
            run_config=state.run.stored_config,
        )
        if self.hub is not None:
            self.hub.offer(self._hub_snapshot(state, grid))

    def _hub_snapshot(self, state: RunState, grid: Path) -> HubSnapshot:
        server = state.server
        epoch = round(float(state.plan.epochs_done(state.version)), 4)
        stats = {**self.latest, "images_seen": server.images_seen, "epoch": epoch}
        source = f"class run {state.run_id} ({state.run.mode})"
        dataset = state.run.fingerprint.get("name")
        # The optimizer step, as train-local counts them (an alternating step is two versions).
        step = state.version // state.plan.versions_per_step
        metadata = training_metadata(source, dataset, step, stats, state.run.model_config)
        # A class run's curves live in its database (the dashboard): no curves.png.
        return take_snapshot(server.generator, server.discriminator, grid, None, metadata)
