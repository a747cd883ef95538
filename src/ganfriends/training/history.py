"""A run's history: one CSV row per optimizer step, and ``curves.png`` drawn from it."""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

# Sample-quality scores (``ganfriends.evaluation``), filled only on the steps that were evaluated.
EVAL_COLUMNS = ("fid", "kid_mean", "kid_std", "precision", "recall")
COLUMNS = (
    "step", "epoch", "images_seen", "d_loss", "g_loss", "d_real", "d_fake", "elapsed_s",
    *EVAL_COLUMNS,
)  # fmt: skip


class HistoryWriter:
    """Appends rows to ``history.csv``; on resume, first drops rows past the checkpoint's step.

    A crash after the last checkpoint leaves rows for steps that the resumed run will redo:
    truncating keeps exactly one row per step.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        resume_step: int | None = None,
        extra_columns: Sequence[str] = (),
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept: list[dict[str, str]] = []
        if resume_step is not None and self.path.is_file():
            kept = [
                row for row in read_history(self.path) if int(float(row["step"])) <= resume_step
            ]
        self._file: IO[str] = self.path.open("w", newline="", encoding="utf-8")
        self._writer = csv.DictWriter(
            self._file, fieldnames=(*COLUMNS, *extra_columns), extrasaction="ignore"
        )
        self._writer.writeheader()
        self._writer.writerows(kept)
        self._file.flush()

    def append(self, row: dict[str, Any]) -> None:
        """Write one row (floats with 6 significant digits)."""
        self._writer.writerow(
            {k: f"{v:.6g}" if isinstance(v, float) else v for k, v in row.items()}
        )

    def flush(self) -> None:
        """Push buffered rows to disk."""
        self._file.flush()

    def close(self) -> None:
        """Flush and close the file."""
        self._file.close()


def read_history(path: str | os.PathLike[str]) -> list[dict[str, str]]:
    """All rows of a history CSV as dicts of strings."""
    with Path(path).open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _smooth(values: Sequence[float], window: int) -> list[float]:
    """Trailing moving average; GAN losses are noisy step to step."""
    out, total, queue = [], 0.0, []
    for v in values:
        queue.append(v)
        total += v
        if len(queue) > window:
            total -= queue.pop(0)
        out.append(total / len(queue))
    return out


def plot_curves(
    history_csv: str | os.PathLike[str], out_png: str | os.PathLike[str]
) -> Path | None:
    """Draw G/D losses, D(x)/D(G(z)) and (when recorded) FID; None when there is nothing to draw."""
    rows = read_history(history_csv)
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")  # no display on servers; must precede pyplot's import
    import matplotlib.pyplot as plt

    steps = [int(float(r["step"])) for r in rows]
    window = max(1, len(rows) // 100)

    def series(name: str) -> list[float]:
        return _smooth([float(r[name]) if r[name] else math.nan for r in rows], window)

    # Older files have no score columns; evaluated rows are a sparse subset.
    scored = [r for r in rows if r.get("fid")]
    panels = 3 if scored else 2
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4), constrained_layout=True)
    ax_loss, ax_score = axes[0], axes[1]
    if scored:
        ax_fid = axes[2]
        seen = [int(float(r["images_seen"])) for r in scored]
        ax_fid.plot(seen, [float(r["fid"]) for r in scored], marker="o", label="FID")
        ax_fid.set_xlabel("images seen")
        ax_fid.set_title("sample quality (FID, lower is better)")
        ax_fid.legend()
    ax_loss.plot(steps, series("d_loss"), label="D loss")
    ax_loss.plot(steps, series("g_loss"), label="G loss")
    ax_loss.set_xlabel("step")
    ax_loss.set_title("losses" + (f" (moving average of {window})" if window > 1 else ""))
    ax_loss.legend()
    ax_score.plot(steps, series("d_real"), label="D(x)")
    ax_score.plot(steps, series("d_fake"), label="D(G(z))")
    ax_score.set_xlabel("step")
    ax_score.set_ylim(-0.05, 1.05)
    ax_score.set_title("discriminator scores")
    ax_score.legend()
    out = Path(out_png)
    tmp = out.with_name(out.name + ".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, out)
    return out
