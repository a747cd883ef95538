"""``ganfriends train-local``: train the GAN on this machine alone.

The run is a pure function of its config: the data order of epoch e is a permutation drawn from
(seed, e), the noise of step s from (seed, s), the initial weights from the seed. A checkpoint holds
the step, so ``--resume`` rebuilds the exact position in the exact same order, and an interrupted
run ends where an uninterrupted one would.

Under torchrun the same trainer runs in every process (nanoGPT train.py's environment-detected
branch): ``ganfriends.cluster.distributed`` gives each process its share of every batch and sums
the gradients between each backward and its optimizer step, and :class:`RunOutputs` is the one
place that lets only rank 0 print and write.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from rich.console import Console

from ganfriends import rng
from ganfriends.cluster.distributed import Cluster, joined
from ganfriends.config import Config
from ganfriends.data import BatchLoader, ImageDataset, make_dataset
from ganfriends.device import describe_device
from ganfriends.errors import CheckpointError, ConfigError, DatasetError
from ganfriends.grid import save_grid
from ganfriends.hub import HubPublisher, open_publisher, take_snapshot, training_metadata
from ganfriends.hub.files import HubSnapshot
from ganfriends.losses import make_loss
from ganfriends.models import ModelConfig, build_models, count_parameters
from ganfriends.rules.registry import SHARED_RUN_DEFINING
from ganfriends.schedule import BatchSchedule
from ganfriends.signals import graceful_stop
from ganfriends.step import MicroBatch, make_optimizers, train_step
from ganfriends.tracking import ExperimentLog, open_log
from ganfriends.training.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from ganfriends.training.history import HistoryWriter, plot_curves
from ganfriends.training.progress import TrainingProgress

if TYPE_CHECKING:
    from ganfriends.evaluation import Evaluator

NUM_SAMPLES = 64  # images in each sample grid (8 x 8)

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


def model_config_for(config: Config, dataset: ImageDataset) -> ModelConfig:
    """A run's architecture: the dataset fixes image size and channels, the config the rest."""
    try:
        return ModelConfig(
            image_size=dataset.image_size,
            channels=dataset.channels,
            latent_dim=config.training.latent_dim,
            g_features=config.training.g_features,
            d_features=config.training.d_features,
            arch=config.training.model,
        )
    except ValueError as exc:  # e.g. --model lsgan on 64x64 images: say which option to change
        raise ConfigError(f"--model {config.training.model}: {exc} (see --image-size)") from exc


def scoring_evaluator(
    config: Config, dataset: ImageDataset, device: torch.device, console: Console
) -> Evaluator | None:
    """The evaluator that scores a run during training (``--eval-interval``), or None."""
    if config.local.eval_interval is None:
        return None
    from ganfriends.evaluation import Evaluator

    return Evaluator.for_dataset(
        config.data.dataset,
        dataset_path=config.data.dataset_path,
        data_dir=config.data.data_dir,
        image_size=dataset.image_size,
        num_samples=config.training.eval_samples,
        seed=config.training.seed,
        device=str(device),
        progress=console.print,
    )


def _adopt_checkpoint_settings(config: Config, checkpoint: Checkpoint, console: Console) -> None:
    """On resume, take the run-defining options from the checkpoint, saying so where they differ."""
    saved = checkpoint.run_config
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
class RunOutputs:
    """Everything a run writes: history, sample grids, curves and checkpoints.

    On every process but rank 0 of a torchrun job it writes nothing: the one place where a job's
    files are gated (nanoGPT's ``master_process``).
    """

    enabled: bool
    out_dir: Path
    generator: torch.nn.Module
    discriminator: torch.nn.Module
    optimizer_g: torch.optim.Optimizer
    optimizer_d: torch.optim.Optimizer
    model_config: ModelConfig
    run_config: dict[str, Any]
    fixed_noise: torch.Tensor
    resume_step: int | None
    log: ExperimentLog = field(default_factory=ExperimentLog)  # --logger: TensorBoard, MLflow
    hub: HubPublisher | None = None  # the huggingface section: pushes from a background thread

    def __post_init__(self) -> None:
        self.last_row: dict[str, float | int] = {}  # the newest history row, for the Hub
        self.history = (
            HistoryWriter(self.out_dir / "history.csv", resume_step=self.resume_step)
            if self.enabled
            else None
        )
        self.step = self.resume_step or 0
        if self.enabled:
            self.log.params(self.run_config)

    def append(self, row: dict[str, float | int]) -> None:
        """One history row (a finished step)."""
        if self.history is not None:
            self.history.append(row)
            self.step = int(row["step"])
            self.last_row = {**self.last_row, **row}  # keeps the last FID between scored steps
            self.log.metrics(self.step, {k: v for k, v in row.items() if k != "step"})

    def save(self, path: Path, *, epoch: int, step: int, images_seen: int) -> None:
        """A checkpoint of the run as it stands (plain tensors, no DDP ``module.`` prefix)."""
        if self.history is None:
            return
        self.history.flush()
        save_checkpoint(
            path,
            generator=self.generator,
            discriminator=self.discriminator,
            optimizer_g=self.optimizer_g,
            optimizer_d=self.optimizer_d,
            epoch=epoch,
            step=step,
            images_seen=images_seen,
            model_config=self.model_config,
            run_config=self.run_config,
        )

    def samples(self, tag: str) -> None:
        """A sample grid from the fixed noise (also ``latest.png``) and the curves so far."""
        if self.history is None:
            return
        self.history.flush()  # the curves are drawn from the file
        self.generator.eval()
        with torch.no_grad():
            fakes = self.generator(self.fixed_noise)
        self.generator.train()
        grid = save_grid(fakes, self.out_dir / "samples" / f"{tag}.png", nrow=8)
        save_grid(fakes, self.out_dir / "samples" / "latest.png", nrow=8)
        plot_curves(self.out_dir / "history.csv", self.out_dir / "curves.png")
        self.log.image(self.step, tag, grid)
        if self.hub is not None:
            self.hub.offer(self._hub_snapshot(grid))

    def _hub_snapshot(self, grid: Path) -> HubSnapshot:
        dataset = self.run_config.get("data", {}).get("dataset")
        meta = training_metadata(
            "train-local", dataset, self.step, self.last_row, self.model_config
        )
        curves = self.out_dir / "curves.png"
        return take_snapshot(self.generator, self.discriminator, grid, curves, meta)

    def close(self) -> None:
        """Flush and close the history; the experiment log keeps the last checkpoint; the Hub
        gets the final state (a bounded wait)."""
        if self.hub is not None:
            self.hub.close()
        if self.history is not None:
            self.history.close()
            latest = self.out_dir / "checkpoints" / "latest.pt"
            if latest.exists():
                self.log.artifact(latest)
            self.log.close()


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
    training = config.training
    checkpoint = load_checkpoint(resume) if resume else None
    if checkpoint is not None:
        _adopt_checkpoint_settings(config, checkpoint, console)
    share = cluster.share(training.batch_size)
    share_size = share.stop - share.start
    micro = config.training.micro_batch or share_size
    if micro > share_size:
        console.print(
            f"[yellow]note:[/] micro-batch {micro} exceeds each process's {share_size} images: "
            f"using {share_size}"
        )
        micro = share_size
    config.training.micro_batch = micro  # stored in checkpoints: a resume continues with it

    out_dir = Path(config.local.output_dir)
    latest = out_dir / "checkpoints" / "latest.pt"
    if checkpoint is None and latest.exists():
        raise ConfigError(
            f"{out_dir} already holds a run: continue it with --resume {latest}, "
            "or choose another --output-dir"
        )

    device = cluster.device
    dataset = make_dataset(
        config.data.dataset,
        path=config.data.dataset_path,
        image_size=training.image_size,
        data_dir=config.data.data_dir,
        download=config.data.download,
    )
    model_config = model_config_for(config, dataset)
    if checkpoint is not None and checkpoint.model_config != model_config:
        raise CheckpointError(
            f"checkpoint {resume} is for {checkpoint.model_config}, "
            f"but the dataset gives {model_config.image_size}x{model_config.image_size}"
            f"x{model_config.channels}"
        )
    steps_per_epoch = len(dataset) // training.batch_size
    if steps_per_epoch == 0:
        raise DatasetError(
            f"the dataset has {len(dataset)} images, "
            f"fewer than one batch of {training.batch_size}: "
            "lower --batch-size"
        )
    schedule = BatchSchedule(len(dataset), training.batch_size, training.seed)
    total_steps = training.epochs * steps_per_epoch
    if config.local.max_steps is not None:
        total_steps = min(total_steps, config.local.max_steps)

    generator, discriminator = build_models(
        model_config, seed=rng.derive_seed(training.seed, rng.INIT)
    )
    generator.to(device).train()
    discriminator.to(device).train()
    optimizer_g, optimizer_d = make_optimizers(
        generator, discriminator, training.learning_rate, (training.beta1, training.beta2)
    )
    step, images_seen = 0, 0
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
        step, images_seen = checkpoint.step, checkpoint.images_seen
    loss = make_loss(training.loss)
    fixed_noise = rng.latent_noise(
        NUM_SAMPLES, model_config.latent_dim, training.seed, rng.FIXED_NOISE
    ).to(device)
    # Built after loading: every process then starts from the same weights and statistics.
    hooks = cluster.step_hooks(
        generator, discriminator, optimizer_g, optimizer_d, micro_batch=micro, share=share_size
    )
    evaluator = scoring_evaluator(config, dataset, device, console) if cluster.is_main else None

    fingerprint = dataset.fingerprint()
    console.print(
        f"[bold]train-local[/] {fingerprint.short()} on {describe_device(device)}"
        f"{cluster.describe()} | "
        f"G {count_parameters(generator):,} params, D {count_parameters(discriminator):,} | "
        f"batch {training.batch_size}"
        f"{f' (micro-batch {micro})' if micro < training.batch_size else ''}, "
        f"{steps_per_epoch} steps/epoch, rule {training.update_rule}, loss {loss.name}"
    )
    if step >= total_steps:
        console.print(f"nothing to do: the run is already at step {step} of {total_steps}")

    outputs = RunOutputs(
        enabled=cluster.is_main,
        out_dir=out_dir,
        generator=generator,
        discriminator=discriminator,
        optimizer_g=optimizer_g,
        optimizer_d=optimizer_d,
        model_config=model_config,
        run_config=config.to_dict(),
        fixed_noise=fixed_noise,
        resume_step=step if checkpoint else None,
        log=open_log(config.tracking, out_dir, out_dir.name)
        if cluster.is_main
        else ExperimentLog(),
        hub=open_publisher(config.huggingface, console) if cluster.is_main else None,
    )

    def save(path: Path) -> None:
        outputs.save(path, epoch=step // steps_per_epoch, step=step, images_seen=images_seen)

    start_time = time.monotonic()
    stopping = False
    skipped_total = 0
    saved_step = step if checkpoint is not None else -1
    mid_step = False  # True while D may be updated and G not yet: such a state is never saved
    progress = TrainingProgress(console, total_steps=total_steps, start_step=step)
    try:
        with graceful_stop() as stop, progress:
            while step < total_steps and not stopping:
                # The rest of this epoch: this process's share of each global batch (all of it
                # in a world of one).
                epoch_end = (step // steps_per_epoch + 1) * steps_per_epoch
                steps = range(step, min(epoch_end, total_steps))
                batches = [schedule.images(s, share) for s in steps]
                for real, skipped in BatchLoader(
                    dataset, batches, num_workers=config.local.num_workers
                ):
                    skipped_total += skipped
                    # The step's noise is drawn for the global batch; image i gets row i.
                    z = schedule.noise(step, model_config.latent_dim, share)[: real.shape[0]]
                    mid_step = True
                    hooks.begin_step()
                    key = (training.seed, rng.DROPOUT, step, *cluster.rng_key)
                    with rng.seeded_global_rng(device, *key):
                        local_stats = train_step(
                            generator,
                            discriminator,
                            loss,
                            micro_batches(real.to(device, non_blocking=True), z.to(device), micro),
                            training.update_rule,
                            optimizer_g=hooks.optimizer_g,
                            optimizer_d=hooks.optimizer_d,
                            reduce=hooks.reduce,
                            backward=hooks.backward,
                        )
                    stats, stopping = cluster.merge(local_stats, stop.requested)
                    step += 1
                    images_seen += stats.images
                    mid_step = False
                    row: dict[str, float | int] = {
                        "step": step,
                        "epoch": round(step / steps_per_epoch, 4),
                        "images_seen": images_seen,
                        "d_loss": stats.d_loss,
                        "g_loss": stats.g_loss,
                        "d_real": stats.d_real,
                        "d_fake": stats.d_fake,
                        "elapsed_s": round(time.monotonic() - start_time, 3),
                    }
                    if evaluator is not None and step % (config.local.eval_interval or 1) == 0:
                        scores = evaluator.evaluate(generator)
                        row.update({k: v for k, v in scores.items() if k != "num_samples"})
                        progress.note(f"step {step}: FID {scores['fid']:.2f}")
                    outputs.append(row)
                    progress.update(step, stats, skipped_total)
                    if stopping:
                        break
                if step % steps_per_epoch == 0 and not stopping:
                    finished_epoch = step // steps_per_epoch
                    if finished_epoch % config.local.sample_interval == 0:
                        outputs.samples(f"epoch_{finished_epoch:04d}")
                    save(latest)
                    saved_step = step
                    if finished_epoch % config.local.checkpoint_interval == 0:
                        save(out_dir / "checkpoints" / f"epoch_{finished_epoch:04d}.pt")
                    progress.epoch_done(finished_epoch, training.epochs)
            stopped_early = stopping and step < total_steps
    finally:
        # Whatever happened (Ctrl+C included), keep every finished step: checkpoint, history,
        # samples.
        # An abort in the middle of a step leaves the models half-updated: keep the last save then.
        if not mid_step and step > saved_step:
            save(latest)
            outputs.samples(f"final_step_{step:07d}")
        outputs.close()

    if skipped_total:
        console.print(f"[yellow]skipped {skipped_total} unreadable images[/]")
    if stopped_early:
        console.print(
            f"stopped at step {step}; continue with: ganfriends train-local --resume {latest}"
        )
    else:
        console.print(
            f"done: step {step}, {images_seen:,} images; "
            f"samples in {out_dir / 'samples'}, checkpoint {latest}"
        )
    return LocalRunResult(
        step=step,
        epoch=step // steps_per_epoch,
        images_seen=images_seen,
        output_dir=out_dir,
        latest_checkpoint=latest,
        stopped_early=stopped_early,
    )
