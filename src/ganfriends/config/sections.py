"""The config's sections, each the options of the commands that read it.

``training`` is what every training run shares (train-local, ``simulate``, the class coordinator):
the model, its loss and optimizer, the seed, the schedule's epochs and micro-batch. ``local`` is
what a run on this machine adds (train-local and torchrun; ``simulate`` writes its outputs the
same way), ``coordinator`` what a class run adds (its units, leases, students and storage;
``simulate`` runs its rules). The other sections belong to one command or one mode each. A section
names its commands in ``COMMANDS``; an option read by fewer or more commands says so itself, and
each command's flags are exactly the options that name it (``ganfriends.cli.flags``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ganfriends.compression import DOWNLOAD_CHOICES, TRANSFERS
from ganfriends.config.options import (
    CLASS_RULES,
    COORDINATOR,
    DOCTOR,
    SIMULATE,
    TRAIN_LOCAL,
    TRAINING_RUNS,
    WORKER,
    option,
)
from ganfriends.rules import registry

# The images a class unit's forward pass takes when no --micro-batch is given.
UNIT_MICRO_BATCH = 64


@dataclass(slots=True)
class DatabaseConfig:
    """Where the PostgreSQL database that coordinates a class run lives."""

    COMMANDS: ClassVar[tuple[str, ...]] = (
        "init-db",
        "students",
        COORDINATOR,
        WORKER,
        "status",
        "dashboard",
        "report",
        DOCTOR,
    )

    url: str | None = option(
        None,
        "libpq URL (postgresql://user:pw@host:port/db); overrides the fields below",
        flag="--db",
        holds_password=True,
    )
    host: str | None = option(None, "database host (none and no url: the embedded server)")
    port: int = option(5432, "database port", minimum=1, maximum=65535)
    database: str = option("ganfriends", "database name")
    user: str = option("ganfriends", "database user")
    password: str | None = option(None, "database password", secret=True)


@dataclass(slots=True)
class TrainingConfig:
    """What every training run shares: the model, its loss and optimizer, the seed, the schedule."""

    COMMANDS: ClassVar[tuple[str, ...]] = TRAINING_RUNS

    epochs: int = option(50, "passes over the dataset", flag="--epochs", minimum=1)
    # A class run's step is --workunits-per-update units of --images-per-work-unit images, and
    # federated modes have their own --batch-size: this one is train-local's.
    batch_size: int = option(
        128, "images per optimizer step", flag="--batch-size", minimum=1, commands=(TRAIN_LOCAL,)
    )
    learning_rate: float = option(2e-4, "Adam learning rate for G and D", flag="--lr", minimum=0)
    beta1: float = option(0.5, "Adam beta1", flag="--beta1", minimum=0, maximum=1)
    beta2: float = option(0.999, "Adam beta2", flag="--beta2", minimum=0, maximum=1)
    latent_dim: int = option(
        100, "size of the noise vector z", flag="--latent-dim", minimum=1, maximum=4096
    )
    image_size: int | None = option(
        None,
        "image height/width: 32 or 64 (default: the dataset's own, 32 for fashion-mnist, 64 else)",
        flag="--image-size",
        choices=("16", "32", "64", "128"),
    )
    g_features: int = option(
        64, "generator width (DCGAN's ngf)", flag="--g-features", minimum=1, maximum=1024
    )
    d_features: int = option(
        64, "discriminator width (DCGAN's ndf)", flag="--d-features", minimum=1, maximum=1024
    )
    model: str = option(
        "dcgan",
        "network architecture: dcgan, or FeGAN's lsgan (32x32 only)",
        flag="--model",
        choices=("dcgan", "lsgan"),
    )
    loss: str = option("bce", "GAN objective", flag="--loss", choices=("bce", "lsgan"))
    update_rule: str = option(
        "alternating",
        "alternating: D steps, then G through the new D (the reference DCGAN; a class run "
        "publishes a D version and a G version per step); simultaneous: both gradients from "
        "one set of weights (one version per step, half the round trips)",
        flag="--update-rule",
        choices=("alternating", "simultaneous"),
    )
    seed: int = option(
        0, "seed for initial weights, data order and noise", flag="--seed", minimum=0
    )
    micro_batch: int | None = option(
        None,
        "images per forward pass (default: train-local's whole batch, or each process's share "
        f"under torchrun; {UNIT_MICRO_BATCH} in a class unit); BatchNorm makes it a run setting",
        flag="--micro-batch",
        minimum=1,
    )
    eval_samples: int = option(
        2000, "generated images per score during training", flag="--eval-samples", minimum=8
    )

    @property
    def unit_micro_batch(self) -> int:
        """The micro-batch of a class run's units: ``micro_batch``, else ``UNIT_MICRO_BATCH``."""
        return self.micro_batch or UNIT_MICRO_BATCH


@dataclass(slots=True)
class DataConfig:
    """Which images to train on and where they are (a worker takes the run's dataset)."""

    COMMANDS: ClassVar[tuple[str, ...]] = (*TRAINING_RUNS, WORKER, DOCTOR)

    dataset: str = option(
        "fashion-mnist",
        "fashion-mnist, mnist, cifar10, celeba or folder",
        flag="--dataset",
        choices=("fashion-mnist", "mnist", "cifar10", "celeba", "folder"),
        commands=TRAINING_RUNS,
    )
    dataset_path: str | None = option(
        None, "dataset location (required for folder)", flag="--dataset-path"
    )
    data_dir: str | None = option(
        None,
        "where downloaded datasets are kept (default ~/.local/share/ganfriends)",
        flag="--data-dir",
    )
    download: bool = option(True, "download a missing dataset when the network allows")


@dataclass(slots=True)
class LocalConfig:
    """What a run on this machine adds: its length, outputs, device and torchrun (data-parallel)
    branch. ``simulate`` takes its outputs and device; a worker its device."""

    COMMANDS: ClassVar[tuple[str, ...]] = (TRAIN_LOCAL,)

    sample_interval: int = option(
        1, "write a sample grid every N epochs", flag="--sample-interval", minimum=1
    )
    checkpoint_interval: int = option(
        5, "keep a checkpoint every N epochs (latest.pt is always kept)",
        flag="--checkpoint-interval", minimum=1,
    )  # fmt: skip
    output_dir: str = option(
        "outputs_local", "where samples, checkpoints and curves go", flag="--output-dir",
        commands=(TRAIN_LOCAL, SIMULATE),
    )  # fmt: skip
    device: str = option(
        "auto", "auto, cpu, cuda, cuda:N (one GPU of several) or mps", flag="--device",
        commands=(TRAIN_LOCAL, SIMULATE, WORKER, DOCTOR),
    )  # fmt: skip
    eval_interval: int | None = option(
        None, "score the generator (FID, KID, precision/recall) every N steps (default: never)",
        flag="--eval-interval", minimum=1, commands=(TRAIN_LOCAL, SIMULATE),
    )  # fmt: skip
    max_steps: int | None = option(
        None, "stop once the run has taken N optimizer steps (smoke runs)", flag="--max-steps",
        minimum=1,
    )  # fmt: skip
    num_workers: int = option(
        2, "image decoding processes for file datasets", flag="--num-workers", minimum=0
    )
    dist_backend: str = option(
        "auto",
        "torch.distributed backend under torchrun: auto (nccl on CUDA, gloo otherwise), gloo, nccl",
        choices=("auto", "gloo", "nccl"),
        flag="--dist-backend",
    )
    strategy: str = option(
        "auto",
        "data-parallel strategy under torchrun: auto (= ddp), ddp (gradients all-reduced between "
        "each network's backward and its step), deepspeed (each network steps through a DeepSpeed "
        "engine; pip install 'ganfriends[deepspeed]')",
        flag="--strategy",
        choices=("auto", "ddp", "deepspeed"),
    )


@dataclass(slots=True)
class CoordinatorConfig:
    """What a class run adds: its mode and units (fixed when the run is created), then the
    instructor's coordinator: leases, student limits, screening, outputs and storage.
    ``simulate`` runs the mode, the units and the screening in one process."""

    COMMANDS: ClassVar[tuple[str, ...]] = (COORDINATOR,)

    mode: str = option(
        "sync", registry.modes_help, flag="--mode", choices=registry.mode_names,
        commands=CLASS_RULES,
    )  # fmt: skip
    images_per_work_unit: int = option(
        320, "images in one work unit", flag="--images-per-work-unit", minimum=1,
        commands=CLASS_RULES,
    )  # fmt: skip
    workunits_per_update: int = option(
        3, "work units aggregated into one optimizer step", flag="--workunits-per-update",
        minimum=1, commands=CLASS_RULES,
    )  # fmt: skip
    transfer_dtype: str = option(
        "float32",
        "how a worker's gradients travel (weights stay float32): bfloat16-stochastic halves "
        "the upload bytes and int8 quarters them, both rounded without bias by draws from the "
        "seed; bfloat16 rounds to nearest (biased; what runs before them used)",
        flag="--transfer-dtype",
        choices=tuple(TRANSFERS),
        commands=CLASS_RULES,
    )
    download_dtype: str = option(
        "float32",
        "how workers download the weights (the coordinator keeps them float32): a copy rounded "
        "without bias to bfloat16-stochastic (half the bytes) or int8 (a quarter), the same "
        "copy for every worker",
        flag="--download-dtype",
        choices=DOWNLOAD_CHOICES,
        commands=CLASS_RULES,
    )
    local_steps: int | None = option(
        None,
        "local alternating steps per unit, with an inner Adam, whose change the coordinator "
        "averages (sync: default 1, the exact synchronous step; federated: E, default 30 as "
        "in FeGAN). GPUs: 64 (FID as training alone at 76x fewer bytes per image); students far "
        "away: 64 with --transfer-dtype int8 --download-dtype int8 (300x fewer; "
        "docs/communication.md)",
        flag="--local-steps", minimum=1, commands=CLASS_RULES,
    )  # fmt: skip
    local_state: str | None = option(
        None,
        "the inner Adam between a unit's rounds: reset (a fresh one per unit; nothing but the "
        "model and its change crosses) or keep (carried per slot or device through the "
        "database, both ways: 2x the model more). Default: reset for sync, keep for federated "
        "(FeGAN)",
        flag="--local-state", choices=("keep", "reset"), commands=CLASS_RULES,
    )  # fmt: skip
    outer_optimizer: str = option(
        "sgd",
        "the outer step on the averaged change of local steps: sgd (lr 1, no momentum = "
        "FedAvg), nesterov (DiLoCo), adam (FedAdam)",
        flag="--outer-optimizer", choices=("sgd", "nesterov", "adam"), commands=CLASS_RULES,
    )  # fmt: skip
    outer_lr: float = option(
        1.0, "the outer step's learning rate (G's and D's)", flag="--outer-lr", minimum=0,
        commands=CLASS_RULES,
    )  # fmt: skip
    outer_momentum: float | None = option(
        None, "the outer step's momentum (default: 0 for sgd, 0.9 for nesterov)",
        flag="--outer-momentum", minimum=0, maximum=0.999, commands=CLASS_RULES,
    )  # fmt: skip
    outer_lr_d: float | None = option(
        None, "D's outer learning rate when it differs from G's", flag="--outer-lr-d",
        minimum=0, commands=CLASS_RULES,
    )  # fmt: skip
    outer_momentum_d: float | None = option(
        None, "D's outer momentum when it differs from G's", flag="--outer-momentum-d",
        minimum=0, maximum=0.999, commands=CLASS_RULES,
    )  # fmt: skip
    work_unit_timeout: float = option(
        300.0, "seconds a claimed unit may go without a heartbeat before it is handed out again",
        flag="--work-unit-timeout", minimum=1,
    )  # fmt: skip
    output_dir: str = option(
        "outputs", "where sample grids and checkpoints go", flag="--output-dir"
    )
    sample_interval: int = option(
        10, "write a sample grid and checkpoint every N updates", flag="--sample-interval",
        minimum=1, commands=CLASS_RULES,
    )  # fmt: skip
    max_iterations: int | None = option(
        None, "finish the run after N updates (optimizer steps)", flag="--max-iterations",
        minimum=1, commands=CLASS_RULES,
    )  # fmt: skip
    new_run: bool = option(
        False, "stop the running run and start a new one (default: resume it)", flag="--new-run"
    )
    run_name: str | None = option(
        None, "a name for a new run (default: dataset and seed)", flag="--run-name"
    )
    max_backups: int = option(
        1, "extra copies of a straggler's unit handed to idle workers", flag="--max-backups",
        minimum=0,
    )  # fmt: skip
    max_units_per_claim: int = option(
        4,
        "most units one worker may claim at once (a worker asks with --units-per-claim), and "
        "most live units one student may hold across all their workers",
        flag="--max-units-per-claim",
        minimum=1,
        maximum=64,
    )
    max_workers_per_student: int = option(
        8,
        "workers one student may have alive at once (enough for --gpus on an 8-GPU machine)",
        flag="--max-workers-per-student",
        minimum=1,
        maximum=1024,
    )
    max_lease_factor: float = option(
        3.0,
        "a unit's lease is extended by heartbeats up to this many unit timeouts after its "
        "claim; then another student gets it",
        flag="--max-lease-factor",
        minimum=1,
    )
    quarantine_after: int = option(
        3,
        "rejected uploads after which a student is quarantined (no more claims until "
        "`ganfriends students pardon`)",
        flag="--quarantine-after",
        minimum=1,
    )
    # 3, measured (benchmarks/robustness.py): with one worker of five sending its gradients x-10,
    # 10x the median still lets it reverse the mean (FID 559 vs 339 honest); 3x keeps the run on
    # course (351). Honest results of a version stayed within 2.8x of the median.
    clip_factor: float = option(
        3.0,
        "scale a result's G, D or feedback tensors down to this many times the version's median "
        "norm (a hostile upload cannot steer the mean; 0 turns it off)",
        flag="--clip-factor",
        minimum=0.0,
        commands=CLASS_RULES,
    )
    keep_last_versions: int = option(3, "newest weight versions kept in the database", minimum=1)
    keep_every_versions: int = option(100, "also keep every Nth weight version", minimum=1)
    poll_interval: float = option(0.1, "seconds between checks for finished units", minimum=0.01)
    eval_interval: int | None = option(
        None, "score the generator (FID, KID, precision/recall) every N updates (default: never)",
        flag="--eval-interval", minimum=1,
    )  # fmt: skip


@dataclass(slots=True)
class WorkerConfig:
    """How a student's worker presents itself and paces its polling (class training)."""

    COMMANDS: ClassVar[tuple[str, ...]] = (WORKER,)

    name: str | None = option(
        None, "name on the leaderboard (default: the hostname)", flag="--name"
    )
    poll_interval: float = option(5.0, "seconds between polls when there is no work", minimum=0.01)
    heartbeat_interval: float = option(
        30.0, "seconds between heartbeats while computing", minimum=0.1
    )
    units_per_claim: int = option(
        1, "units to claim and upload at once (fewer round trips for a fast GPU; the run caps it)",
        flag="--units-per-claim", minimum=1, commands=(WORKER, DOCTOR),
    )  # fmt: skip
    # Docker's stop waits 10 s before SIGKILL, Colab and systemd about as long: 5 s leaves room.
    stop_grace: float = option(
        5.0, "seconds a stopped worker may spend finishing its unit before it gives the unit back",
        flag="--stop-grace", minimum=0.0,
    )  # fmt: skip
