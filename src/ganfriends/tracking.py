"""Experiment logging beside ``history.csv``: TensorBoard event files or an MLflow run.

``--logger csv`` (the default) writes nothing more than the history every run keeps.
``--logger tensorboard`` writes event files under ``<output>/tensorboard`` (``tensorboard
--logdir <output>/tensorboard``). ``--logger mlflow`` records one MLflow run per training
session: the config as params, every history row as metrics, sample grids and the final
checkpoint as artifacts; the store is ``sqlite:///<output>/mlflow.db`` unless ``--mlflow-uri``
names another (``mlflow ui --backend-store-uri ...``). Both are optional extras
(``pip install 'ganfriends[tracking]'``); only rank 0 of a torchrun job logs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ganfriends.config import TrackingConfig
from ganfriends.errors import GanError

MLFLOW_BATCH = 100  # params per log_batch call (MLflow's limit)
MLFLOW_PARAM_CHARS = 500  # the shortest param value limit across MLflow versions


class TrackingError(GanError):
    """The experiment logger cannot be used (its package missing, its store unreachable)."""


class ExperimentLog:
    """What a run reports besides its history; this base (``--logger csv``) reports nothing."""

    def params(self, config: Mapping[str, Mapping[str, Any]]) -> None:
        """The run's settings, by section."""

    def metrics(self, step: int, values: Mapping[str, float]) -> None:
        """Numbers of one step (losses, D's scores, images seen, FID when evaluated)."""

    def image(self, step: int, tag: str, path: Path) -> None:
        """A sample grid written at ``path``."""

    def artifact(self, path: Path) -> None:
        """A file to keep with the run (the final checkpoint)."""

    def close(self) -> None:
        """Flush and finish the run."""


def flat_params(config: Mapping[str, Mapping[str, Any]]) -> Iterator[tuple[str, str]]:
    """``("training.seed", "11")`` pairs of a config dict (already redacted), shortened."""
    for section, values in config.items():
        for name, value in values.items():
            yield f"{section}.{name}", str(value)[:MLFLOW_PARAM_CHARS]


def finite(values: Mapping[str, float]) -> dict[str, float]:
    """The finite numbers of ``values`` (a NaN loss of an empty step is not a point)."""
    return {k: float(v) for k, v in values.items() if math.isfinite(float(v))}


class TensorBoardLog(ExperimentLog):
    """Event files read by TensorBoard (and by its ``EventAccumulator``)."""

    def __init__(self, log_dir: Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:
            raise TrackingError(
                "--logger tensorboard needs the tensorboard package: "
                "pip install 'ganfriends[tracking]'"
            ) from exc
        self.writer = SummaryWriter(log_dir=str(log_dir))

    def params(self, config: Mapping[str, Mapping[str, Any]]) -> None:
        """The config as a markdown table under the text tab."""
        rows = "\n".join(f"| {key} | {value} |" for key, value in flat_params(config))
        self.writer.add_text("config", "| option | value |\n|---|---|\n" + rows, 0)

    def metrics(self, step: int, values: Mapping[str, float]) -> None:
        """One scalar per value, under ``train/``."""
        for key, value in finite(values).items():
            self.writer.add_scalar(f"train/{key}", value, step)

    def image(self, step: int, tag: str, path: Path) -> None:
        """The grid under the images tab, at its step."""
        with Image.open(path) as picture:
            pixels = np.asarray(picture.convert("RGB"))
        self.writer.add_image("samples", pixels, step, dataformats="HWC")

    def close(self) -> None:
        """Flush the event file."""
        self.writer.close()


class MlflowLog(ExperimentLog):
    """One MLflow run, written through the tracking client (no global MLflow state)."""

    def __init__(self, uri: str, experiment: str, run_name: str, artifact_root: Path) -> None:
        try:
            from mlflow.tracking import MlflowClient
        except ImportError as exc:
            raise TrackingError(
                "--logger mlflow needs the mlflow-skinny package: "
                "pip install 'ganfriends[tracking]'"
            ) from exc
        from mlflow.entities import Metric, Param

        self._metric, self._param = Metric, Param
        try:
            self.client = MlflowClient(tracking_uri=uri)
            found = self.client.get_experiment_by_name(experiment)
            experiment_id = (
                found.experiment_id
                if found is not None
                else self.client.create_experiment(
                    experiment, artifact_location=artifact_root.absolute().as_uri()
                )
            )
            self.run_id = self.client.create_run(experiment_id, run_name=run_name).info.run_id
        except Exception as exc:  # MLflow raises many kinds: a store it cannot open
            raise TrackingError(f"cannot open the MLflow store {uri}: {exc}") from exc

    def params(self, config: Mapping[str, Mapping[str, Any]]) -> None:
        """``section.option`` params, in batches MLflow accepts."""
        pairs = [self._param(key, value) for key, value in flat_params(config)]
        for start in range(0, len(pairs), MLFLOW_BATCH):
            self.client.log_batch(self.run_id, params=pairs[start : start + MLFLOW_BATCH])

    def metrics(self, step: int, values: Mapping[str, float]) -> None:
        """The step's finite values as one metrics batch."""
        now = int(time.time() * 1000)
        batch = [self._metric(k, v, now, step) for k, v in finite(values).items()]
        if batch:
            self.client.log_batch(self.run_id, metrics=batch)

    def image(self, step: int, tag: str, path: Path) -> None:
        """The grid as an artifact under ``samples/``."""
        self.client.log_artifact(self.run_id, str(path), "samples")

    def artifact(self, path: Path) -> None:
        """The file as an artifact under ``checkpoints/``."""
        self.client.log_artifact(self.run_id, str(path), "checkpoints")

    def close(self) -> None:
        """Mark the run finished."""
        self.client.set_terminated(self.run_id, "FINISHED")


def open_log(settings: TrackingConfig, output_dir: Path, run_name: str) -> ExperimentLog:
    """The logger ``settings`` ask for, writing under ``output_dir``."""
    if settings.logger == "tensorboard":
        return TensorBoardLog(output_dir / "tensorboard")
    if settings.logger == "mlflow":
        output_dir.mkdir(parents=True, exist_ok=True)
        uri = settings.mlflow_uri or f"sqlite:///{(output_dir / 'mlflow.db').absolute()}"
        return MlflowLog(uri, settings.experiment, run_name, output_dir / "mlartifacts")
    return ExperimentLog()
