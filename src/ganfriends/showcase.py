"""Looking at a trained generator: what ``notebooks/demo_trained_model.ipynb`` shows.

A model comes from a checkpoint (train-local's or the coordinator's ``latest.pt``), read-only
from a class database (the newest published weights of its latest run; a student's URL is
enough), or from a Hugging Face repository a run pushed to (``HF_REPO_ID``). Each picture, the
curves included, is a PIL image: a notebook displays it as it is.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from matplotlib.figure import Figure
from PIL import Image

from ganfriends import rng
from ganfriends.errors import GanError
from ganfriends.grid import make_grid
from ganfriends.models import ModelConfig, make_generator
from ganfriends.training.checkpoint import load_checkpoint
from ganfriends.training.history import read_history

CHECKPOINT_ENV = "GANFRIENDS_CHECKPOINT"
DATABASE_ENV = "GANFRIENDS_DATABASE_URL"
HF_REPO_ENV = "HF_REPO_ID"
CURVES = ("d_loss", "g_loss")


@dataclass
class Trained:
    """A generator in eval mode, where it came from, and what its run recorded."""

    generator: torch.nn.Module
    model_config: ModelConfig
    source: str
    step: int  # train-local's step, or the class run's version
    history: list[dict[str, float]] = field(default_factory=list)  # step, d_loss, g_loss
    progression: list[tuple[int, Image.Image]] = field(default_factory=list)  # (step, grid)


def find_checkpoint(
    path: str | os.PathLike[str] | None = None, search: Path = Path("outputs")
) -> Path:
    """``path``, else ``$GANFRIENDS_CHECKPOINT``, else the newest ``latest.pt`` under ``search``."""
    chosen = path or os.environ.get(CHECKPOINT_ENV)
    if chosen:
        return Path(chosen)
    found = sorted(search.glob("**/checkpoints/latest.pt"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise GanError(
            f"no checkpoint found under {search}/ : train one (ganfriends train-local) or set "
            f"{CHECKPOINT_ENV}"
        )
    return found[-1]


def from_checkpoint(path: str | os.PathLike[str]) -> Trained:
    """The checkpoint's generator, with the history and sample grids of its output folder."""
    checkpoint = load_checkpoint(path)
    run_dir = Path(path).parent.parent  # <output>/checkpoints/latest.pt
    history = []
    if (run_dir / "history.csv").is_file():
        for row in read_history(run_dir / "history.csv"):
            if all(row.get(k) not in (None, "") for k in CURVES):
                history.append({"step": float(row["step"]), **{k: float(row[k]) for k in CURVES}})
    grids = sorted((run_dir / "samples").glob("*.png")) if (run_dir / "samples").is_dir() else []
    progression = [
        (i, Image.open(p).convert("RGB")) for i, p in enumerate(grids) if p.name != "latest.png"
    ]
    return Trained(
        generator=checkpoint.build_generator("cpu"),
        model_config=checkpoint.model_config,
        source=f"checkpoint {path}",
        step=checkpoint.step,
        history=history,
        progression=progression,
    )


def from_database(url: str) -> Trained:
    """The newest published generator of the database's latest run, read-only."""
    from ganfriends.classroom import queue
    from ganfriends.classroom.payload import load_weights
    from ganfriends.db import Database

    with Database(url, max_size=1) as db:
        row = db.fetch_one("status_latest_run")
        if row is None:
            raise GanError("the class database holds no run yet")
        run = queue.Run.from_row(row)
        blobs = queue.weights(db, run.id, run.version)
        if blobs is None:
            raise GanError(f"run {run.id} has no published weights for version {run.version}")
        history = [
            {"step": float(r["version"]), "d_loss": float(r["d_loss"]),
             "g_loss": float(r["g_loss"])}
            for r in db.fetch_all("loss_history", run_id=run.id)
            if r["d_loss"] is not None and r["g_loss"] is not None
        ]  # fmt: skip
        progression = []
        for stop in db.fetch_all("dashboard_sample_versions", run_id=run.id):
            sample = db.fetch_one("dashboard_sample", run_id=run.id, version=stop["version"])
            if sample is not None:
                image = Image.open(io.BytesIO(sample["png"])).convert("RGB")
                progression.append((int(stop["version"]), image))
    generator = make_generator(run.model_config)
    load_weights(generator, blobs.generator)
    return Trained(
        generator=generator.eval(),
        model_config=run.model_config,
        source=f"run {run.id} ({run.name}), version {run.version}",
        step=run.version,
        history=history,
        progression=progression,
    )


def from_hub(repo_id: str) -> Trained:
    """The generator a run pushed to a Hugging Face repository, with its pushed loss points
    and sample grids (``HF_TOKEN`` and ``HF_ENDPOINT`` apply)."""
    from ganfriends.hub.download import fetch_model, target_for

    target = target_for(repo_id)
    model = fetch_model(target, with_grids=True)
    history = [
        {"step": float(p["step"]), "d_loss": float(p["d_loss"]), "g_loss": float(p["g_loss"])}
        for p in model.metadata["loss_history"]
    ]
    return Trained(
        generator=model.generator,
        model_config=model.model_config,
        source=f"Hugging Face repo {target.describe()} ({model.metadata.get('source', 'a run')})",
        step=model.step,
        history=history,
        progression=model.grids,
    )


def load_trained(path: str | os.PathLike[str] | None = None) -> Trained:
    """With no ``path``: ``$HF_REPO_ID``'s model when set, else ``$GANFRIENDS_DATABASE_URL``'s;
    else a checkpoint."""
    repo_id = os.environ.get(HF_REPO_ENV)
    if path is None and repo_id:
        return from_hub(repo_id)
    url = os.environ.get(DATABASE_ENV)
    if path is None and url:
        return from_database(url)
    return from_checkpoint(find_checkpoint(path))


def _images(trained: Trained, z: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        images: torch.Tensor = trained.generator(z)
    return images


def samples(trained: Trained, num: int = 64, *, seed: int | None = 0) -> Image.Image:
    """A grid from fixed noise (``seed`` 0 draws what the run's sample grids show) or, with
    ``seed=None``, from fresh random noise."""
    latent = trained.model_config.latent_dim
    if seed is None:
        z = torch.randn(num, latent, 1, 1)
    else:
        z = rng.latent_noise(num, latent, seed, rng.FIXED_NOISE)
    return make_grid(_images(trained, z), nrow=8)


def interpolation(trained: Trained, steps: int = 10, *, seed: int = 1) -> Image.Image:
    """One row from one latent point to another, on the great circle between them (slerp):
    a straight line would pass through low-norm points the generator never saw."""
    latent = trained.model_config.latent_dim
    a, b = rng.latent_noise(2, latent, seed, rng.FIXED_NOISE).flatten(1)
    omega = torch.arccos(torch.clamp(torch.dot(a / a.norm(), b / b.norm()), -1.0, 1.0))
    points = []
    for t in torch.linspace(0.0, 1.0, steps):
        if float(omega) < 1e-6:
            points.append((1 - t) * a + t * b)
        else:
            points.append(
                (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)
            )
    z = torch.stack(points).view(steps, latent, 1, 1)
    return make_grid(_images(trained, z), nrow=steps)


def curves(trained: Trained) -> Image.Image:
    """D's and G's losses against steps (or versions)."""
    figure = Figure(figsize=(7, 3.5))
    axes = figure.subplots()
    steps = [row["step"] for row in trained.history]
    for key in CURVES:
        axes.plot(steps, [row[key] for row in trained.history], label=key)
    axes.set_xlabel("version" if trained.source.startswith("run") else "step")
    axes.set_ylabel("loss")
    axes.legend()
    figure.tight_layout()
    png = io.BytesIO()
    figure.savefig(png, format="png", dpi=100)
    return Image.open(io.BytesIO(png.getvalue()))


def progression(trained: Trained, count: int = 6, *, size: int = 160) -> Image.Image | None:
    """Up to ``count`` of the run's sample grids, evenly spread over training, side by side."""
    grids = trained.progression
    if not grids:
        return None
    indices = sorted({round(i * (len(grids) - 1) / max(1, count - 1)) for i in range(count)})
    picked = [grids[i][1] for i in indices]
    strip = Image.new("RGB", (size * len(picked), size), "white")
    for i, grid in enumerate(picked):
        strip.paste(grid.resize((size, size)), (i * size, 0))
    return strip
