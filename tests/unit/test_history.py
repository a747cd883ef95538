from __future__ import annotations

from pathlib import Path

from PIL import Image

from ganfriends.training.history import HistoryWriter, plot_curves, read_history


def row(step: int) -> dict[str, float | int]:
    return {
        "step": step,
        "epoch": step / 10,
        "images_seen": step * 4,
        "d_loss": 1.0,
        "g_loss": 2.0,
        "d_real": 0.6,
        "d_fake": 0.4,
        "elapsed_s": float(step),
    }


def test_history_writes_one_row_per_step(tmp_path: Path) -> None:
    writer = HistoryWriter(tmp_path / "h.csv")
    for step in range(1, 4):
        writer.append(row(step))
    writer.close()
    assert [r["step"] for r in read_history(tmp_path / "h.csv")] == ["1", "2", "3"]


def test_resume_drops_rows_past_the_checkpoint(tmp_path: Path) -> None:
    writer = HistoryWriter(tmp_path / "h.csv")
    for step in range(1, 6):
        writer.append(row(step))
    writer.close()
    resumed = HistoryWriter(tmp_path / "h.csv", resume_step=3)
    resumed.append(row(4))
    resumed.close()
    assert [r["step"] for r in read_history(tmp_path / "h.csv")] == ["1", "2", "3", "4"]


def test_curves_png_is_drawn(tmp_path: Path) -> None:
    writer = HistoryWriter(tmp_path / "h.csv")
    for step in range(1, 30):
        writer.append(row(step))
    writer.close()
    out = plot_curves(tmp_path / "h.csv", tmp_path / "curves.png")
    assert out is not None
    with Image.open(out) as image:
        assert image.size[0] > 500


def test_curves_gain_an_fid_panel_when_scores_were_recorded(tmp_path: Path) -> None:
    writer = HistoryWriter(tmp_path / "h.csv")
    for step in range(1, 30):
        scores = {"fid": 100.0 / step, "kid_mean": 0.1} if step % 10 == 0 else {}
        writer.append(row(step) | scores)
    writer.close()
    rows = read_history(tmp_path / "h.csv")
    assert rows[9]["fid"] == "10" and rows[8]["fid"] == ""
    out = plot_curves(tmp_path / "h.csv", tmp_path / "curves.png")
    assert out is not None
    with Image.open(out) as image:
        assert image.size[0] > 1500  # three panels instead of two
