"""A class run's experiment log puts its losses, FID and sample grids on one x-axis, the
optimizer step, while its database keeps versions (read back with TensorBoard's own reader)."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import torch
from rich.console import Console
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from ganfriends.classroom import queue
from ganfriends.classroom.coordinator import Coordinator
from ganfriends.classroom.outputs import CoordinatorOutputs
from ganfriends.classroom.payload import encode_result
from ganfriends.classroom.state import RunState, create_run, load_run_state
from ganfriends.config import Config
from ganfriends.db import Database
from ganfriends.evaluation import Evaluator
from ganfriends.rules import SyncPlan
from ganfriends.rules.work import UnitStart, Workspace
from ganfriends.signals import StopRequest
from tests.integration.queue_helpers import register
from tests.integration.test_coordinator_update import MODEL, FixedImages
from tests.pixel_evaluator import pixel_evaluator

CPU = torch.device("cpu")
STEPS = 4  # of the alternating rule: 8 versions, a D version and a G version per step
PLAN = SyncPlan(dataset_size=256, seed=11, images_per_unit=64, units_per_update=1, micro_batch=32,
                epochs=1, max_updates=STEPS, update_rule="alternating")  # fmt: skip


class PixelScored(CoordinatorOutputs):
    """The coordinator's outputs, scored on features that need no training."""

    def evaluator(self, state: RunState) -> Evaluator:
        return pixel_evaluator(FixedImages().images[:64])


def work(db_url: str, run_id: int, stop: StopRequest, errors: list[BaseException]) -> None:
    """An in-process worker computing each unit with the run's rule until ``stop``."""
    dataset = FixedImages()
    try:
        with Database(db_url, min_size=1, max_size=1, timeout=10) as db:
            worker = register(db, run_id, "thread")
            while not stop.requested:
                claims = queue.claim(db, run_id, worker)
                if not claims:
                    stop.event.wait(0.01)
                    continue
                state = load_run_state(db, run_id)  # the weights the claimed unit computes on
                work = Workspace(state.server.generator, state.server.discriminator, dataset, CPU)
                result = state.rule.compute(work, claims[0].unit, UnitStart(None, None))
                outgoing = queue.Outgoing(claims[0], result.images, encode_result(result), None, 0)
                queue.submit(db, run_id, worker, [outgoing])
    except BaseException as exc:  # pragma: no cover - re-raised by the test
        errors.append(exc)


def test_fid_and_grids_of_a_class_run_are_logged_at_the_step_of_its_losses(
    db: Database, db_url: str, tmp_path: Path
) -> None:
    # Prepare: an alternating run scored every 2 steps, a grid every step, TensorBoard's log.
    config = Config()
    config.coordinator.output_dir = str(tmp_path)
    config.coordinator.poll_interval = 0.01
    config.coordinator.sample_interval = 1
    config.coordinator.eval_interval = 2
    config.tracking.logger = "tensorboard"
    with db.transaction() as tx:
        run_id = create_run(
            tx, name="axis", mode="sync", config=config.to_dict(), model_config=MODEL,
            fingerprint=FixedImages().fingerprint().to_dict(), plan=PLAN, lease_seconds=60,
            max_backups=0, max_units_per_claim=1,
        )  # fmt: skip
    console = Console(file=io.StringIO(), width=200)
    coordinator = Coordinator(db, config, console=console)
    coordinator.outputs = PixelScored(db, config, tmp_path, console)

    # Execute: a real coordinator and one worker thread run it to the end.
    stop, errors = StopRequest(), list[BaseException]()
    thread = threading.Thread(target=work, args=(db_url, run_id, stop, errors))
    thread.start()
    try:
        result = coordinator.run(StopRequest())
    finally:
        stop.request()
        thread.join(timeout=30)
    assert not errors, errors
    assert result.complete and result.version == 2 * STEPS

    # Assert: one x-axis in the log, versions in the database.
    events = EventAccumulator(
        str(tmp_path / "tensorboard"), size_guidance={"images": 0, "scalars": 0}
    )
    events.Reload()
    steps = list(range(1, STEPS + 1))
    assert [e.step for e in events.Scalars("train/d_loss")] == steps
    assert [e.step for e in events.Scalars("train/g_loss")] == steps
    assert [e.step for e in events.Images("samples")] == steps
    assert [e.step for e in events.Scalars("train/fid")] == [2, 4]
    assert [int(r["version"]) for r in db.fetch_all("fid_history", run_id=run_id)] == [4, 8]
    stored = db.fetch_all("dashboard_sample_versions", run_id=run_id)
    assert sorted(int(r["version"]) for r in stored) == [2, 4, 6, 8]
