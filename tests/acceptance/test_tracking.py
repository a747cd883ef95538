"""--logger tensorboard|mlflow through the real CLI, read back with each library's own reader."""

from __future__ import annotations

from pathlib import Path

from mlflow.tracking import MlflowClient
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.acceptance.class_harness import ClassRoom
from tests.acceptance.conftest import TINY_MODEL, run_cli
from tests.conftest import requires_fashion_mnist

pytestmark = requires_fashion_mnist

STEPS = 5
TRAIN = ["train-local", "--dataset", "fashion-mnist", "--batch-size", "16", "--seed", "3",
         "--max-steps", str(STEPS), "--output-dir", "run", *TINY_MODEL]  # fmt: skip


def test_train_local_writes_tensorboard_events(workdir: Path) -> None:
    done = run_cli([*TRAIN, "--logger", "tensorboard"], workdir)
    assert done.returncode == 0, done.stderr

    events = EventAccumulator(
        str(workdir / "run" / "tensorboard"), size_guidance={"images": 0, "scalars": 0}
    )
    events.Reload()
    d_loss = events.Scalars("train/d_loss")
    assert [e.step for e in d_loss] == list(range(1, STEPS + 1))
    assert all(e.value > 0 for e in d_loss)
    assert [e.value for e in events.Scalars("train/images_seen")][-1] == 16 * STEPS
    assert len(events.Images("samples")) >= 1
    assert (
        "training.seed"
        in events.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    )


def test_train_local_records_an_mlflow_run(workdir: Path) -> None:
    done = run_cli([*TRAIN, "--logger", "mlflow", "--experiment", "tiny"], workdir)
    assert done.returncode == 0, done.stderr

    client = MlflowClient(f"sqlite:///{workdir / 'run' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tiny")
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params["training.seed"] == "3"
    assert run.data.params["training.batch_size"] == "16"
    history = client.get_metric_history(run.info.run_id, "d_loss")
    assert sorted(m.step for m in history) == list(range(1, STEPS + 1))
    assert run.data.metrics["images_seen"] == 16 * STEPS
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"samples", "checkpoints"} <= artifacts
    kept = [a.path for a in client.list_artifacts(run.info.run_id, "checkpoints")]
    assert kept == ["checkpoints/latest.pt"]


def test_the_coordinator_records_its_versions_in_mlflow(room: ClassRoom) -> None:
    room.small_run(3, "--logger", "mlflow")

    client = MlflowClient(f"sqlite:///{room.workdir / 'run' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("ganfriends")
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id])
    history = client.get_metric_history(run.info.run_id, "g_loss")
    assert sorted(m.step for m in history) == [1, 2, 3]
    assert run.data.metrics["contributors"] == 1
    assert run.data.params["coordinator.mode"] == "sync"
    assert "checkpoints" in {a.path for a in client.list_artifacts(run.info.run_id)}
