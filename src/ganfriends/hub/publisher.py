"""Pushing a run to the Hugging Face Hub (the ``huggingface`` config section).

train-local and the class coordinator hand a :class:`HubSnapshot` to a :class:`HubPublisher`
every ``push_interval`` sample grids, and once more when they close, so the final state always
lands. The training thread only copies the weights to CPU and reads two PNGs (milliseconds);
a background thread serialises and uploads them as ONE commit. Its queue holds one snapshot: a
newer one replaces an older one still waiting, so a slow Hub never builds a backlog, and a
failed push is a one-line warning, retried by the next push with the newer state.

A pushed repository holds::

    generator.safetensors, discriminator.safetensors   weights, BatchNorm statistics included
    samples/latest.png, samples/<tag>.png              the latest grid, and each pushed grid
    curves.png                                         the loss curves (train-local)
    metadata.json                                      step, epoch, images seen, losses, FID,
                                                       model_config (what ``generate`` rebuilds)
    README.md                                          the model card

Weights travel as safetensors and the rest as JSON: nothing a reader loads can run code.
``ganfriends.hub.download`` reads such a repository back.
"""

from __future__ import annotations

import importlib.util
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.markup import escape

from ganfriends.config import HuggingFaceConfig
from ganfriends.errors import ConfigError
from ganfriends.hub.files import HubSnapshot, repo_files
from ganfriends.models import ModelConfig

FLUSH_SECONDS = 60.0  # how long close() waits for the last push
MAX_LOSS_POINTS = 1000  # metadata.json's loss history stays small


def take_snapshot(
    generator: torch.nn.Module,
    discriminator: torch.nn.Module,
    samples: Path,
    curves: Path | None,
    metadata: dict[str, Any],
) -> HubSnapshot:
    """Copy what a push needs, on the training thread, so training may go on changing it."""
    return HubSnapshot(
        step=int(metadata["step"]),
        generator=_cpu_copy(generator),
        discriminator=_cpu_copy(discriminator),
        samples_png=samples.read_bytes(),
        sample_name=samples.name,
        curves_png=curves.read_bytes() if curves is not None and curves.is_file() else None,
        metadata=dict(metadata),
    )


def training_metadata(
    source: str,
    dataset: object,
    step: int,
    stats: Mapping[str, float | int],
    model_config: ModelConfig,
) -> dict[str, Any]:
    """metadata.json's run fields from the newest statistics (a history row, a version's)."""
    return {
        "source": source,
        "dataset": dataset,
        "step": step,
        "epoch": stats.get("epoch", 0),
        "images_seen": stats.get("images_seen", 0),
        "losses": {k: stats[k] for k in ("d_loss", "g_loss", "d_real", "d_fake") if k in stats},
        "fid": stats.get("fid"),
        "model_config": model_config.to_dict(),
    }


def _cpu_copy(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    # clone(): on CPU, .to("cpu") would return the live tensor, which the next step changes.
    return {k: v.detach().to("cpu").clone().contiguous() for k, v in module.state_dict().items()}


@dataclass(frozen=True)
class HubTarget:
    """Where pushes go and with which credentials (never printed, never stored)."""

    repo_id: str
    token: str | None = field(repr=False)
    endpoint: str | None  # None: the public Hub

    @classmethod
    def from_config(cls, config: HuggingFaceConfig) -> HubTarget:
        """The config's repository; token and endpoint fall back to ``HF_TOKEN``/``HF_ENDPOINT``."""
        if not config.repo_id:
            raise ConfigError("invalid config: huggingface.repo_id must be set")
        return cls(
            repo_id=config.repo_id,
            token=config.token or os.environ.get("HF_TOKEN") or None,
            endpoint=(config.endpoint or os.environ.get("HF_ENDPOINT") or "").rstrip("/") or None,
        )

    def describe(self) -> str:
        """``owner/name`` and, for another endpoint than the Hub, its URL."""
        return self.repo_id if self.endpoint is None else f"{self.repo_id} at {self.endpoint}"


def require_hub_client() -> None:
    """Raise a one-line ConfigError when ``huggingface_hub`` is not installed."""
    if importlib.util.find_spec("huggingface_hub") is None:
        raise ConfigError(
            "huggingface.enabled needs the huggingface_hub package: "
            "pip install 'ganfriends[hub]' (or set huggingface.enabled to false)"
        )


def open_publisher(config: HuggingFaceConfig, console: Console) -> HubPublisher | None:
    """A started publisher when the config enables pushing, else None."""
    if not config.enabled:
        return None
    require_hub_client()
    target = HubTarget.from_config(config)
    console.print(
        f"Hugging Face: pushing to {escape(target.describe())} every "
        f"{config.push_interval} sample grid(s) and at the end",
        highlight=False,
    )

    def warn(message: str) -> None:
        console.print(f"[yellow]{escape(message)}[/]", highlight=False)

    return HubPublisher(target, config.push_interval, warn=warn, note=console.print)


class HubPublisher:
    """Pushes snapshots from a background thread; see the module docstring."""

    def __init__(
        self,
        target: HubTarget,
        push_interval: int,
        *,
        warn: Callable[[str], None],
        note: Callable[[str], None] | None = None,
        flush_seconds: float = FLUSH_SECONDS,
    ) -> None:
        self.target = target
        self.push_interval = push_interval
        self.flush_seconds = flush_seconds
        self._warn = warn
        self._note = note
        self._offers = 0
        self._unpushed: HubSnapshot | None = None  # the newest state, when not yet queued
        self._pending: HubSnapshot | None = None
        self._busy = False
        self._closing = False
        self._cond = threading.Condition()
        self._grids: list[str] = []
        self._losses: list[dict[str, float]] = []
        self._repo_ready = False
        self.pushed: list[int] = []  # steps pushed, in order
        self.push_seconds: list[float] = []  # how long each successful push took
        self.failures = 0
        self.replaced = 0  # snapshots dropped for a newer one before they were pushed
        self._thread = threading.Thread(target=self._run, name="hub-publisher", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ the training side

    def offer(self, snapshot: HubSnapshot) -> bool:
        """A sample grid was written: queue its snapshot every ``push_interval`` offers.

        Any other one is kept as the newest state, which :meth:`close` pushes if nothing newer
        was queued. Taken when the grid is written, not at close: a run stopped in the middle
        of a step must not push half-updated weights.
        """
        self._offers += 1
        if self._offers % self.push_interval:
            self._unpushed = snapshot
            return False
        self._unpushed = None
        self.submit(snapshot)
        return True

    def submit(self, snapshot: HubSnapshot) -> None:
        """Queue a snapshot, replacing one still waiting; returns at once."""
        self._grids = [*self._grids, f"samples/{snapshot.sample_name}"]
        losses = snapshot.metadata.get("losses") or {}
        if "d_loss" in losses and "g_loss" in losses:
            point = {"step": snapshot.step, "d_loss": losses["d_loss"], "g_loss": losses["g_loss"]}
            self._losses = [*self._losses, point][-MAX_LOSS_POINTS:]
        snapshot.metadata.update(sample_grids=self._grids, loss_history=self._losses)
        with self._cond:
            if self._pending is not None:
                self.replaced += 1
            self._pending = snapshot
            self._cond.notify_all()

    def close(self) -> bool:
        """Push the newest state if it was not, wait up to ``flush_seconds``; True if all landed."""
        if self._unpushed is not None:
            snapshot, self._unpushed = self._unpushed, None
            self.submit(snapshot)
        deadline = time.monotonic() + self.flush_seconds
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            while self._pending is not None or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            unfinished = self._pending or self._busy
        if unfinished:
            self._warn(
                f"Hugging Face: the last push to {self.target.describe()} did not finish within "
                f"{self.flush_seconds:g} s: the repository may lack the final state"
            )
            return False
        self._thread.join(timeout=5)
        if self._note is not None and self.pushed:
            self._note(
                f"Hugging Face: {len(self.pushed)} push(es) to {self.target.describe()}, "
                f"the last at step {self.pushed[-1]}"
            )
        return True

    # ------------------------------------------------------------------ the background thread

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._closing:
                    self._cond.wait()
                if self._pending is None:
                    return
                snapshot, self._pending = self._pending, None
                self._busy = True
            started = time.monotonic()
            try:
                self._push(snapshot)
                self.pushed.append(snapshot.step)
                self.push_seconds.append(time.monotonic() - started)
            except Exception as exc:  # any failure: warn, and let the next push retry
                self.failures += 1
                self._warn(
                    f"Hugging Face: push of step {snapshot.step} to {self.target.describe()} "
                    f"failed ({self._first_line(exc)}); the next push retries"
                )
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _first_line(self, exc: BaseException) -> str:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if exc.__cause__ is not None:  # the client wraps the reason: "Error while uploading X"
            text = f"{text}: {self._first_line(exc.__cause__)}"
        # Belt and braces: no message we print may carry the token.
        return text.replace(self.target.token, "***") if self.target.token else text

    def _push(self, snapshot: HubSnapshot) -> None:
        from huggingface_hub import CommitOperationAdd, HfApi
        from huggingface_hub.utils.tqdm import disable_progress_bars

        disable_progress_bars()  # no tqdm bars in the middle of the training output
        api = HfApi(endpoint=self.target.endpoint, token=self.target.token)
        if not self._repo_ready:
            api.create_repo(self.target.repo_id, repo_type="model", exist_ok=True)
            self._repo_ready = True
        files = repo_files(snapshot, self.target.repo_id)
        api.create_commit(
            self.target.repo_id,
            operations=[CommitOperationAdd(path, content) for path, content in files.items()],
            commit_message=f"ganfriends: step {snapshot.step}",
            repo_type="model",
        )
