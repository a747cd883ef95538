"""``ganfriends train-local``: train the GAN on this machine alone.

The run is a pure function of its config: the data order of epoch e is a permutation drawn from
(seed, e), the noise of step s from (seed, s), the initial weights from the seed. A checkpoint holds
the step, so ``--resume`` rebuilds the exact position in the exact same order, and an interrupted
run ends where an uninterrupted one would.

Under torchrun the same trainer runs in every process (nanoGPT train.py's environment-detected
branch): ``ganfriends.cluster.distributed`` gives each process its share of every batch and sums
the gradients between each backward and its optimizer step, and the run's writer
(:class:`~ganfriends.training.writer.RunWriter`) lets only rank 0 write.

``_train`` reads as its three parts: :func:`_set_up` (checkpoint, data, schedule, models),
:func:`_loop` (epochs of steps: :func:`_step`, then a row, grids and checkpoints) and
:func:`_finish` (what an interrupted or finished run keeps).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
from rich.console import Console

from ganfriends import rng
from ganfriends.cluster.distributed import Cluster, StepHooks, joined
from ganfriends.config import Config
from ganfriends.data import BatchLoader, ImageDataset
from ganfriends.device import describe_device
from ganfriends.errors import CheckpointError, ConfigError, DatasetError
from ganfriends.hub import open_publisher
from ganfriends.losses import GanLoss, make_loss
from ganfriends.models import ModelConfig, build_models, count_parameters
from ganfriends.rules.base import ServerState
from ganfriends.rules.registry import SHARED_RUN_DEFINING
from ganfriends.schedule import BatchSchedule
from ganfriends.signals import StopRequest, graceful_stop
from ganfriends.step import MicroBatch, StepStats, make_optimizers, train_step
from ganfriends.tracking import ExperimentLog, open_log
from ganfriends.training.checkpoint import Checkpoint, load_checkpoint
from ganfriends.training.history import HistoryWriter
from ganfriends.training.progress import TrainingProgress
from ganfriends.training.setup import model_config_for, open_dataset, scoring_evaluator
from ganfriends.training.writer import RunWriter

__all__ = ["RUN_DEFINING", "LocalRunResult", "micro_batches", "model_config_for", "train_local"]

# Options that define a run's trajectory: on --resume the checkpoint's values win, so the resumed
# run continues the same computation.
RUN_DEFINING = (
    *SHARED_RUN_DEFINING,
    "training.batch_size",
    "training.micro_batch",  # BatchNorm normalises over each micro-batch
)


@dataclass
class LocalRunResult:
    """Where a finished (or stopped) local run left things."""

    step: int
    epoch: int
    images_seen: int
    output_dir: Path
    latest_checkpoint: Path
    stopped_early: bool


def _adopt_checkpoint_settings(config: Config, checkpoint: Checkpoint, console: Console) -> None:
    """On resume, take the run-defining options from the checkpoint, saying so where they differ."""
    saved = checkpoint.run_config
    if "micro_batch" in saved.get("local", {}):
        # Written before micro_batch moved to `training`: there, training.micro_batch was the
        # class units' setting (64), and local.micro_batch the one this run trained with.
        training = {**saved.get("training", {}), "micro_batch": saved["local"]["micro_batch"]}
        saved = {**saved, "training": training}
    for key in RUN_DEFINING:
        section, _, name = key.partition(".")
        if name not in saved.get(section, {}):
            continue
        old, current = saved[section][name], getattr(getattr(config, section), name)
        if old != current and current is not None:
            console.print(
                f"[yellow]resume:[/] using the checkpoint's {section}.{name} = {old!r} "
                f"(not {current!r})"
            )
        setattr(getattr(config, section), name, old)
    model = checkpoint.model_config
    config.training.model = model.arch
    config.training.latent_dim = model.latent_dim
    config.training.g_features = model.g_features
    config.training.d_features = model.d_features
    config.training.image_size = model.image_size


def micro_batches(real: torch.Tensor, z: torch.Tensor, size: int) -> list[MicroBatch]:
    """Split a batch (or this process's share of it) into micro-batches of ``size`` images."""
    pairs = zip(torch.split(real, size), torch.split(z, size), strict=True)
    return [MicroBatch(r, n) for r, n in pairs]


@dataclass
class LocalRun:
    """A local run, set up: its data, schedule and models, and where its loop stands."""

    config: Config
    cluster: Cluster
    console: Console
    dataset: ImageDataset
    schedule: BatchSchedule
    models: ServerState  # plain networks and optimizers (what a checkpoint holds)
    model_config: ModelConfig
    loss: GanLoss
    hooks: StepHooks  # what steps the optimizers and sums gradients under this job's strategy
    share: slice  # this process's images of each global batch
    micro: int
    steps_per_epoch: int
    total_steps: int
    step: int = 0
    images_seen: int = 0
    saved_step: int = -1  # the step latest.pt holds (-1: none yet)
    mid_step: bool = False  # True while D may be updated and G not yet: never saved
    skipped: int = 0  # unreadable images left out
    stopping: bool = False

    @property
    def epoch(self) -> int:
        """Completed epochs."""
        return self.step // self.steps_per_epoch

    @property
    def out_dir(self) -> Path:
        """Where the run writes."""
        return Path(self.config.local.output_dir)

    def epoch_batches(self) -> list[list[int]]:
        """This process's images of each step left in the current epoch."""
        epoch_end = (self.epoch + 1) * self.steps_per_epoch
        steps = range(self.step, min(epoch_end, self.total_steps))
        return [self.schedule.images(s, self.share) for s in steps]


def train_local(
    config: Config, *, resume: str | Path | None = None, console: Console | None = None
) -> LocalRunResult:
    """Run (or resume) local training as ``config`` says; returns where it stopped.

    Under torchrun this is one process's part of the job; only rank 0 prints and writes.
    """
    local = config.local
    with joined(config.local.device, local.dist_backend, strategy=local.strategy) as cluster:
        if not cluster.is_main:
            console = Console(quiet=True)
        return _train(config, cluster, resume, console or Console(soft_wrap=True))


def _train(
    config: Config, cluster: Cluster, resume: str | Path | None, console: Console
) -> LocalRunResult:
    run = _set_up(config, cluster, resume, console)
    writer = _open_writer(run)
    try:
        _loop(run, writer)
    finally:
        _finish(run, writer)
    return _report(run)


# ---------------------------------------------------------------------------------- set-up


def _set_up(
    config: Config, cluster: Cluster, resume: str | Path | None, console: Console
) -> LocalRun:
    """Checkpoint, data, schedule and models of the run ``config`` (and ``resume``) describe."""
    training = config.training
    checkpoint = load_checkpoint(resume) if resume else None
    if checkpoint is not None:
        _adopt_checkpoint_settings(config, checkpoint, console)
    share = cluster.share(training.batch_size)
    micro = _micro_batch(config, share, console)
    latest = Path(config.local.output_dir) / "checkpoints" / "latest.pt"
    if checkpoint is None and latest.exists():
        raise ConfigError(
            f"{config.local.output_dir} already holds a run: continue it with --resume {latest}, "
            "or choose another --output-dir"
        )
    dataset = open_dataset(config.data, config.data.dataset, training.image_size)
    model_config = model_config_for(config, dataset)
    if checkpoint is not None and checkpoint.model_config != model_config:
        raise CheckpointError(
            f"checkpoint {resume} is for {checkpoint.model_config}, "
            f"but the dataset gives {model_config.image_size}x{model_config.image_size}"
            f"x{model_config.channels}"
        )
    steps_per_epoch, total_steps = _length(config, dataset)
    models = _models(config, model_config, cluster.device, checkpoint, resume)
    # Built after loading: every process then starts from the same weights and statistics.
    hooks = cluster.step_hooks(
        models.generator, models.discriminator, models.optimizer_g, models.optimizer_d,
        micro_batch=micro, share=share.stop - share.start,
    )  # fmt: skip
    schedule = BatchSchedule(len(dataset), training.batch_size, training.seed)
    loss = make_loss(training.loss)
    run = LocalRun(config, cluster, console, dataset, schedule, models, model_config, loss, hooks,
                   share, micro, steps_per_epoch, total_steps)  # fmt: skip
    if checkpoint is not None:
        run.step = run.saved_step = checkpoint.step
        run.images_seen = checkpoint.images_seen
    _announce(run)
    return run


def _length(config: Config, dataset: ImageDataset) -> tuple[int, int]:
    """Steps per epoch and steps the run takes in all."""
    training = config.training
    steps_per_epoch = len(dataset) // training.batch_size
    if steps_per_epoch == 0:
        raise DatasetError(
            f"the dataset has {len(dataset)} images, fewer than one batch of "
            f"{training.batch_size}: lower --batch-size"
        )
    total_steps = training.epochs * steps_per_epoch
    if config.local.max_steps is not None:
        total_steps = min(total_steps, config.local.max_steps)
    return steps_per_epoch, total_steps


def _micro_batch(config: Config, share: slice, console: Console) -> int:
    """The micro-batch each process splits its share of a batch into."""
    share_size = share.stop - share.start
    micro = config.training.micro_batch or share_size
    if micro > share_size:
        console.print(
            f"[yellow]note:[/] micro-batch {micro} exceeds each process's {share_size} images: "
            f"using {share_size}"
        )
        micro = share_size
    config.training.micro_batch = micro  # stored in checkpoints: a resume continues with it
    return micro


def _models(
    config: Config,
    model_config: ModelConfig,
    device: torch.device,
    checkpoint: Checkpoint | None,
    resume: str | Path | None,
) -> ServerState:
    """The seeded networks and their optimizers on ``device``, as ``checkpoint`` left them."""
    training = config.training
    generator, discriminator = build_models(
        model_config, seed=rng.derive_seed(training.seed, rng.INIT)
    )
    generator.to(device).train()
    discriminator.to(device).train()
    optimizer_g, optimizer_d = make_optimizers(
        generator, discriminator, training.learning_rate, (training.beta1, training.beta2)
    )
    if checkpoint is not None:
        try:
            generator.load_state_dict(checkpoint.generator_state_dict)
            discriminator.load_state_dict(checkpoint.discriminator_state_dict)
            optimizer_g.load_state_dict(checkpoint.optimizer_g_state_dict)
            optimizer_d.load_state_dict(checkpoint.optimizer_d_state_dict)
        except (RuntimeError, ValueError, KeyError) as exc:
            raise CheckpointError(
                f"checkpoint {resume} does not fit the model: {str(exc).splitlines()[0]}"
            ) from exc
    return ServerState(generator, discriminator, optimizer_g, optimizer_d)


def _announce(run: LocalRun) -> None:
    """The run's one-line summary (and that there is nothing to do)."""
    training, models = run.config.training, run.models
    micro = f" (micro-batch {run.micro})" if run.micro < training.batch_size else ""
    run.console.print(
        f"[bold]train-local[/] {run.dataset.fingerprint().short()} on "
        f"{describe_device(run.cluster.device)}{run.cluster.describe()} | "
        f"G {count_parameters(models.generator):,} params, "
        f"D {count_parameters(models.discriminator):,} | batch {training.batch_size}{micro}, "
        f"{run.steps_per_epoch} steps/epoch, rule {training.update_rule}, loss {run.loss.name}"
    )
    if run.step >= run.total_steps:
        run.console.print(
            f"nothing to do: the run is already at step {run.step} of {run.total_steps}"
        )


def _open_writer(run: LocalRun) -> RunWriter:
    """The run's writer; on every process but rank 0, one that writes nothing."""
    config, main = run.config, run.cluster.is_main
    out_dir = run.out_dir
    evaluator = None
    if main and config.local.eval_interval is not None:
        evaluator = scoring_evaluator(
            config, dataset=config.data.dataset, image_size=run.dataset.image_size,
            seed=config.training.seed, device=run.cluster.device, console=run.console,
        )  # fmt: skip
    resume_step = run.step if run.saved_step >= 0 else None
    return RunWriter(
        out_dir, run.models, run.model_config, config.to_dict(), config.training.seed,
        "train-local", config.data.dataset,
        log=open_log(config.tracking, out_dir, out_dir.name) if main else ExperimentLog(),
        hub=open_publisher(config.huggingface, run.console) if main else None,
        history=HistoryWriter(out_dir / "history.csv", resume_step=resume_step) if main else None,
        evaluator=evaluator, eval_interval=config.local.eval_interval, enabled=main,
        step=run.step, images_seen=run.images_seen,
    )  # fmt: skip


# ---------------------------------------------------------------------------------- loop


def _loop(run: LocalRun, writer: RunWriter) -> None:
    """Epochs of steps until the run is done or stopped: a history row per step, grids and
    checkpoints at the end of each epoch."""
    progress = TrainingProgress(run.console, total_steps=run.total_steps, start_step=run.step)
    start_time = time.monotonic()
    with graceful_stop() as stop, progress:
        while run.step < run.total_steps and not run.stopping:
            loader = BatchLoader(
                run.dataset, run.epoch_batches(), num_workers=run.config.local.num_workers
            )
            for real, skipped in loader:
                run.skipped += skipped
                stats = _step(run, real, stop)
                row = {
                    "step": run.step,
                    "epoch": round(run.step / run.steps_per_epoch, 4),
                    "images_seen": run.images_seen,
                    "d_loss": stats.d_loss,
                    "g_loss": stats.g_loss,
                    "d_real": stats.d_real,
                    "d_fake": stats.d_fake,
                    "elapsed_s": round(time.monotonic() - start_time, 3),
                }
                scores = writer.record(row)
                if scores:
                    progress.note(f"step {run.step}: FID {scores['fid']:.2f}")
                progress.update(run.step, stats, run.skipped)
                if run.stopping:
                    break
            if run.step % run.steps_per_epoch == 0 and not run.stopping:
                _end_epoch(run, writer)
                progress.epoch_done(run.epoch, run.config.training.epochs)


def _step(run: LocalRun, real: torch.Tensor, stop: StopRequest) -> StepStats:
    """One optimizer step on this process's share of the step's batch, summed over the job."""
    training, device = run.config.training, run.cluster.device
    # The step's noise is drawn for the global batch; image i gets row i.
    z = run.schedule.noise(run.step, run.model_config.latent_dim, run.share)[: real.shape[0]]
    run.mid_step = True
    run.hooks.begin_step()
    key = (training.seed, rng.DROPOUT, run.step, *run.cluster.rng_key)
    with rng.seeded_global_rng(device, *key):
        local_stats = train_step(
            run.models.generator,
            run.models.discriminator,
            run.loss,
            micro_batches(real.to(device, non_blocking=True), z.to(device), run.micro),
            training.update_rule,
            optimizer_g=run.hooks.optimizer_g,
            optimizer_d=run.hooks.optimizer_d,
            reduce=run.hooks.reduce,
            backward=run.hooks.backward,
        )
    stats, run.stopping = run.cluster.merge(local_stats, stop.requested)
    run.step += 1
    run.images_seen += stats.images
    run.mid_step = False
    return stats


def _end_epoch(run: LocalRun, writer: RunWriter) -> None:
    """A finished epoch: its grid (every ``--sample-interval``), latest.pt, and a kept
    checkpoint every ``--checkpoint-interval``."""
    local, epoch = run.config.local, run.epoch
    if epoch % local.sample_interval == 0:
        writer.samples(f"epoch_{epoch:04d}")
    writer.checkpoint(epoch=epoch)
    run.saved_step = run.step
    if epoch % local.checkpoint_interval == 0:
        writer.checkpoint(epoch=epoch, path=run.out_dir / "checkpoints" / f"epoch_{epoch:04d}.pt")


# ---------------------------------------------------------------------------------- finish


def _finish(run: LocalRun, writer: RunWriter) -> None:
    """Whatever happened (Ctrl+C included), keep every finished step: checkpoint, history,
    samples. An abort in the middle of a step leaves the models half-updated: the last save
    stays then."""
    try:
        if not run.mid_step and run.step > run.saved_step:
            writer.checkpoint(epoch=run.epoch)
            writer.samples(f"final_step_{run.step:07d}")
    finally:
        writer.close()


def _report(run: LocalRun) -> LocalRunResult:
    """Say where the run stopped and how to go on."""
    latest = run.out_dir / "checkpoints" / "latest.pt"
    stopped_early = run.stopping and run.step < run.total_steps
    if run.skipped:
        run.console.print(f"[yellow]skipped {run.skipped} unreadable images[/]")
    if stopped_early:
        run.console.print(
            f"stopped at step {run.step}; continue with: ganfriends train-local --resume {latest}"
        )
    else:
        run.console.print(
            f"done: step {run.step}, {run.images_seen:,} images; "
            f"samples in {run.out_dir / 'samples'}, checkpoint {latest}"
        )
    return LocalRunResult(run.step, run.epoch, run.images_seen, run.out_dir, latest, stopped_early)
