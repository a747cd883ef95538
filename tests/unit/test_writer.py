"""The run writer: every output at one x-axis, the optimizer step, with images seen beside it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from ganfriends.models import ModelConfig, build_models
from ganfriends.rules.base import ServerState
from ganfriends.step import make_optimizers
from ganfriends.tracking import TensorBoardLog
from ganfriends.training.checkpoint import load_checkpoint
from ganfriends.training.history import HistoryWriter, read_history
from ganfriends.training.writer import RunWriter
from tests.pixel_evaluator import pixel_evaluator

MODEL = ModelConfig(image_size=16, channels=1, latent_dim=8, g_features=4, d_features=4)
REAL = torch.rand(64, 1, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1


class Kept:
    """Extra outputs that keep what they are given (as a class run stores them in its database)."""

    def __init__(self) -> None:
        self.grids: list[Path] = []
        self.scores_given: list[Mapping[str, float]] = []

    def grid(self, path: Path) -> None:
        self.grids.append(path)

    def scores(self, scores: Mapping[str, float]) -> None:
        self.scores_given.append(scores)


def writer(out: Path, **options: Any) -> RunWriter:
    generator, discriminator = build_models(MODEL, seed=3)
    optimizers = make_optimizers(generator, discriminator, 2e-4, (0.5, 0.999))
    models = ServerState(generator, discriminator, *optimizers)
    return RunWriter(out, models, MODEL, {"training": {"seed": 3}}, 3, "test", "pixels", **options)


def row(step: int, **values: float) -> dict[str, float | int]:
    return {"step": step, "images_seen": 32 * step, **values}


def test_two_versions_of_a_step_their_grid_and_scores_are_logged_at_the_step(
    tmp_path: Path,
) -> None:
    # As a class run of the alternating rule records them: a D version, then a G version.
    out = writer(tmp_path, log=TensorBoardLog(tmp_path / "tb"), evaluator=pixel_evaluator(REAL),
                 eval_interval=2)  # fmt: skip
    for step in (1, 2, 3, 4):
        out.record(row(step, d_loss=1.0 / step), whole_step=False)
        out.record(row(step, g_loss=2.0 * step))
        out.samples(f"version_{2 * step:06d}")
    out.close()

    events = EventAccumulator(str(tmp_path / "tb"), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    assert [e.step for e in events.Scalars("train/d_loss")] == [1, 2, 3, 4]
    assert [e.step for e in events.Scalars("train/g_loss")] == [1, 2, 3, 4]
    assert [e.step for e in events.Scalars("train/fid")] == [2, 4]
    assert [e.step for e in events.Images("samples")] == [1, 2, 3, 4]
    assert [e.value for e in events.Scalars("train/images_seen")][-1] == 128


def test_scores_join_the_row_of_a_whole_step_due_for_them(tmp_path: Path) -> None:
    out = writer(tmp_path, history=HistoryWriter(tmp_path / "history.csv"),
                 evaluator=pixel_evaluator(REAL), eval_interval=2)  # fmt: skip
    scored = [out.record(row(step, d_loss=1.0)) for step in (1, 2, 3)]
    out.record(row(4, d_loss=1.0), whole_step=False)  # half a step: never scored
    out.close()

    assert [bool(s) for s in scored] == [False, True, False]
    rows = read_history(tmp_path / "history.csv")
    assert [bool(r["fid"]) for r in rows] == [False, True, False, False]
    assert scored[1]["fid"] > 0
    assert float(rows[1]["fid"]) == pytest.approx(scored[1]["fid"], rel=1e-5)  # 6 digits


def test_extra_outputs_get_every_grid_and_the_scores_with_their_sample_count(
    tmp_path: Path,
) -> None:
    kept = Kept()
    out = writer(tmp_path, evaluator=pixel_evaluator(REAL), eval_interval=1, extra=kept)
    out.record(row(1, d_loss=1.0))
    grid = out.samples("version_000001")

    assert kept.grids == [grid] and grid == tmp_path / "samples" / "version_000001.png"
    assert (tmp_path / "samples" / "latest.png").read_bytes() == grid.read_bytes()
    assert [s["num_samples"] for s in kept.scores_given] == [64]


def test_a_checkpoint_is_at_the_writer_s_step_and_images(tmp_path: Path) -> None:
    out = writer(tmp_path, step=7, images_seen=224)  # a resumed run
    out.record(row(8, d_loss=1.0))
    out.checkpoint(epoch=2)

    saved = load_checkpoint(out.latest_checkpoint)
    assert (saved.step, saved.images_seen, saved.epoch) == (8, 256, 2)
    assert saved.run_config == {"training": {"seed": 3}}


def test_a_writer_of_another_process_than_rank_0_writes_nothing(tmp_path: Path) -> None:
    out = writer(tmp_path / "run", enabled=False)
    out.record(row(1, d_loss=1.0))
    out.samples("epoch_0001")
    out.checkpoint(epoch=1)
    out.close()

    assert not (tmp_path / "run").exists()
