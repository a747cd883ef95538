"""What the training benchmarks share: their options, runs, scores and table cells.

``federated.py``, ``mdgan.py`` and ``robustness.py`` each train a series of short runs on
Fashion-MNIST (``simulate`` or ``train_local``), on the CPU and with the config file and
``GANFRIENDS_*`` variables ignored, then score every run's last checkpoint with one
:class:`Evaluator` prepared once. :class:`Bench` does that; each benchmark keeps only its own
settings, its tables and its command line (the shared options and the ``--quick``/defaults
handling are :func:`add_run_arguments` and :func:`parse_run_args`).
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from rich.console import Console

from ganfriends.config import Config, load_config
from ganfriends.evaluation import Evaluator
from ganfriends.evaluation.checkpoints import evaluate_checkpoint
from ganfriends.training.history import read_history
from ganfriends.training.local import train_local
from ganfriends.training.simulate import simulate

DATASET = "fashion-mnist"
IMAGE_SIZE = 32  # pixels, the dataset's natural size
NEVER = 10**9  # a sample/checkpoint interval no run reaches: only the final outputs are written


def progress(message: str) -> None:
    """One progress line on stderr (stdout is kept for the tables)."""
    print(message, file=sys.stderr, flush=True)


def quiet() -> Console:
    """A console that shows and keeps nothing, for the runs' own output."""
    # Not a terminal, so no live progress bar is drawn; quiet, so nothing is kept either.
    return Console(file=io.StringIO(), quiet=True)


def run_config(out_dir: Path, data_dir: str | None, overrides: Mapping[str, Any]) -> Config:
    """A run on the CPU on Fashion-MNIST (no download), writing to ``out_dir``, plus ``overrides``.

    The config file and the environment are ignored, so the settings are exactly these.
    """
    common: dict[str, Any] = {
        "data.dataset": DATASET,
        "data.data_dir": data_dir,
        "data.download": False,
        "training.device": "cpu",
        "training.output_dir": str(out_dir),
    }
    return load_config(overrides={**common, **overrides}, env={}, default_file=None)


def add_run_arguments(parser: argparse.ArgumentParser, quick: str, eval_samples: int) -> None:
    """The options every training benchmark has.

    ``--eval-samples`` (default ``eval_samples``), ``--threads``, ``--data-dir``, ``--workdir``
    and ``--quick`` (``quick`` says what it sets).
    """
    parser.add_argument(
        "--eval-samples",
        type=int,
        help=f"generated (and held-out) images per score (default {eval_samples})",
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="torch CPU threads (default: torch's own); 1 where other jobs share the cores",
    )
    parser.add_argument(
        "--data-dir", help="where the datasets and the feature cache are (default: ganfriends')"
    )
    parser.add_argument(
        "--workdir", type=Path, help="keep every run's outputs here (default: a temporary dir)"
    )
    parser.add_argument(
        "--quick", action="store_true", help=f"tiny settings to check the script: {quick}"
    )


def add_tables_argument(parser: argparse.ArgumentParser, tables: int, help: str) -> None:
    """``--tables``: which of the benchmark's ``tables`` (numbered from 1) to run."""
    numbers = list(range(1, tables + 1))
    parser.add_argument(
        "--tables", type=int, nargs="+", choices=numbers, default=numbers, help=help
    )


def parse_run_args(
    parser: argparse.ArgumentParser,
    argv: Sequence[str] | None,
    defaults: Mapping[str, Any],
    quick: Mapping[str, Any],
) -> argparse.Namespace:
    """Parse ``argv``; options left out take ``quick``'s value with ``--quick``, else ``defaults``'.

    Every integer option named in ``defaults`` (and ``--threads`` when given) must be >= 1.
    ``--threads`` is applied to torch here.
    """
    args = parser.parse_args(argv)
    for name, value in (quick if args.quick else defaults).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    checked = [n for n, v in defaults.items() if isinstance(v, int)]
    for name in [*checked, "threads"]:
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    return args


@contextmanager
def work_root(workdir: Path | None, prefix: str) -> Iterator[Path]:
    """``workdir`` (created), or a temporary directory deleted afterwards; then how long it took."""
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        root = workdir or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        yield root
    progress(f"done in {time.monotonic() - start:.0f} s")


@dataclass
class Run:
    """What one training run left: its updates, images, timings, traffic and quality."""

    label: str
    iterations: int  # generator updates (rounds, versions or local steps)
    devices: int  # worker units per iteration (1 for local training)
    images_seen: int
    loop_seconds: float  # last history row's elapsed_s: the training loop alone
    wall_seconds: float  # the whole call, dataset load and set-up included
    bytes_down: int  # over the run (0 for local training)
    bytes_up: int
    checkpoint: Path
    fid: float = float("nan")
    kid: float = float("nan")

    @property
    def bytes_moved(self) -> int:
        """Worker bytes, down and up, over the whole run."""
        return self.bytes_down + self.bytes_up

    @property
    def bytes_per_image(self) -> float:
        """Worker bytes per image trained on."""
        return self.bytes_moved / max(1, self.images_seen)

    @property
    def bytes_per_iteration(self) -> float:
        """Worker bytes (down + up, all devices) per generator update."""
        return self.bytes_moved / max(1, self.iterations)

    @property
    def images_per_second(self) -> float:
        """Images trained on per second of the training loop."""
        return self.images_seen / max(self.loop_seconds, 1e-9)


def loop_seconds(rows: Sequence[Mapping[str, str]]) -> float:
    """The training loop's duration: ``elapsed_s`` of the last history row."""
    if not rows:
        raise SystemExit("a run wrote no history rows")
    return float(rows[-1]["elapsed_s"])


class Scorer:
    """FID and KID of checkpoints against one evaluator, prepared on first use."""

    def __init__(self, data_dir: str | None, samples: int) -> None:
        self.data_dir = data_dir
        self.samples = samples
        self._evaluator: Evaluator | None = None

    @property
    def evaluator(self) -> Evaluator:
        """``samples`` held-out test images' features, prepared once (evaluation seed 0)."""
        if self._evaluator is None:
            start = time.monotonic()
            self._evaluator = Evaluator.for_dataset(
                DATASET,
                data_dir=self.data_dir,
                image_size=IMAGE_SIZE,
                num_samples=self.samples,
                seed=0,
                device="cpu",
                download=False,
                progress=progress,
            )
            progress(
                f"evaluator ready in {time.monotonic() - start:.0f} s: "
                f"{self._evaluator.num_real} held-out images"
            )
        return self._evaluator

    def fid_kid(self, checkpoint: Path) -> tuple[float, float]:
        """FID and mean KID of the checkpoint's generator."""
        report = evaluate_checkpoint(checkpoint, evaluator=self.evaluator, num_samples=self.samples)
        return report.metrics["fid"], report.metrics["kid_mean"]


class Bench:
    """Runs training jobs in numbered output directories and scores them with one evaluator.

    ``model`` holds the settings every run shares (the model, the loss, their widths).
    """

    def __init__(
        self,
        root: Path,
        *,
        data_dir: str | None,
        eval_samples: int,
        model: Mapping[str, Any],
    ) -> None:
        self.root = root
        self.data_dir = data_dir
        self.model = dict(model)
        self.scorer = Scorer(data_dir, eval_samples)
        self.count = 0

    def config(self, out_dir: Path, overrides: Mapping[str, Any]) -> Config:
        """The config of one run writing to ``out_dir``."""
        return run_config(out_dir, self.data_dir, {**self.model, **overrides})

    def out_dir(self, name: str) -> Path:
        """A fresh output directory, numbered in the order the runs start."""
        self.count += 1
        return self.root / f"{self.count:02d}-{name}"

    def simulated(
        self, name: str, overrides: Mapping[str, Any], *, iterations: int | None, devices: int
    ) -> Run:
        """A ``simulate`` run; SystemExit unless it reaches version ``iterations`` (if given)."""
        out = self.out_dir(name)
        config = self.config(out, {**overrides, "coordinator.sample_interval": NEVER})
        start = time.monotonic()
        result = simulate(config, console=quiet())
        wall = time.monotonic() - start
        if result.stopped_early or (iterations is not None and result.version != iterations):
            raise SystemExit(f"{name}: the simulation stopped at version {result.version}")
        rows = read_history(out / "history.csv")
        down = sum(int(float(r["bytes_down"])) for r in rows)
        up = sum(int(float(r["bytes_up"])) for r in rows)
        if down + up != result.bytes_moved:
            raise SystemExit(f"{name}: history.csv's bytes differ from the simulation's total")
        run = Run(
            name, result.version, devices, result.images_seen, loop_seconds(rows), wall,
            down, up, result.latest_checkpoint,
        )  # fmt: skip
        return self.finish(run)

    def local(self, name: str, *, steps: int, seed: int, batch: int) -> Run:
        """A ``train_local`` run of ``steps`` steps of ``batch`` images."""
        out = self.out_dir(name)
        config = self.config(
            out,
            {
                "training.batch_size": batch,
                "training.max_steps": steps,
                "training.seed": seed,
                "training.sample_interval": NEVER,
                "training.checkpoint_interval": NEVER,
            },
        )
        start = time.monotonic()
        result = train_local(config, console=quiet())
        wall = time.monotonic() - start
        if result.stopped_early or result.step != steps:
            raise SystemExit(f"{name}: local training stopped at step {result.step}")
        rows = read_history(out / "history.csv")
        run = Run(
            name, steps, 1, result.images_seen, loop_seconds(rows), wall, 0, 0,
            result.latest_checkpoint,
        )  # fmt: skip
        return self.finish(run)

    def describe(self, run: Run) -> str:
        """The progress line's account of a finished run (a benchmark may say more)."""
        return (
            f"{run.images_seen:,} images in {run.wall_seconds:.0f} s (training loop "
            f"{run.loop_seconds:.0f} s, {run.images_per_second:,.0f} img/s)"
        )

    def finish(self, run: Run) -> Run:
        """``run``, after a progress line about it."""
        progress(f"[run {self.count}] {run.label}: {self.describe(run)}")
        return run

    def score(self, run: Run) -> Run:
        """``run`` with the FID and KID of its final generator."""
        start = time.monotonic()
        run.fid, run.kid = self.scorer.fid_kid(run.checkpoint)
        progress(
            f"  scored {run.label}: FID {run.fid:.2f}, KID {run.kid:.4f} "
            f"({time.monotonic() - start:.0f} s)"
        )
        return run


def mean_std(values: Sequence[float], digits: int) -> str:
    """``mean ± std`` of ``values`` (std 0 for one value), ``digits`` after the point."""
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def verdict(ok: bool) -> str:
    """A goal line's result."""
    return "PASS" if ok else "FAIL"


def pyplot() -> ModuleType:
    """matplotlib's pyplot drawing to files (no display), imported only by the plotting scripts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(plt: ModuleType, fig: Any, path: Path) -> None:
    """Lay ``fig`` out, write it to ``path`` (PNG, 110 dpi) and free it."""
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
