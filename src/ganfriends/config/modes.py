"""The sections of the modes with devices (``--mode federated``, ``--mode md-gan``) and of the
services around a run: experiment tracking, the Hugging Face Hub, SLURM scripts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ganfriends.config.options import CLASS_RULES, COORDINATOR, TRAIN_LOCAL, option


@dataclass(slots=True)
class FederatedConfig:
    """Federated rounds (FeGAN): devices hold fixed shards; each round a fraction of them runs
    local steps from the round's model and the coordinator combines their deltas."""

    COMMANDS: ClassVar[tuple[str, ...]] = CLASS_RULES

    devices: int = option(
        10,
        "devices N: federated clients (plus device 0, FeGAN's server shard); md-gan discriminators",
        flag="--devices", minimum=1,
    )  # fmt: skip
    fraction: float = option(
        0.2, "fraction C of the clients chosen per round", flag="--fraction", minimum=0, maximum=1
    )
    batch_size: int = option(
        50, "images per local step B (md-gan: per device and batch b)", flag="--batch-size",
        minimum=1,
    )  # fmt: skip
    rounds: int | None = option(
        None, "rounds R (default: enough rounds for --epochs passes)", flag="--rounds", minimum=1
    )
    non_iid: bool = option(False, "FeGAN's non-iid partition (needs labels)", flag="--non-iid")
    magic_num: int = option(
        3000, "FeGAN's magic_num: per-class cap of the non-iid partition", flag="--magic-num",
        minimum=1,
    )  # fmt: skip
    weighting: str = option(
        "fedavg",
        "how deltas are weighted: fedavg (by shard size), uniform, or FeGAN's kl-exp, kl-linear, "
        "kl-dirac",
        flag="--weighting",
        choices=("fedavg", "uniform", "kl-exp", "kl-linear", "kl-dirac"),
    )
    balanced_sampling: bool = option(
        False,
        "FeGAN's class-balanced choice of devices (needs labels)",
        flag="--balanced-sampling",
    )
    weak_fraction: float = option(
        0.0,
        "fraction F of weak clients, which run E/2 local steps",
        flag="--weak-fraction",
        minimum=0,
        maximum=1,
    )
    round_timeout: float | None = option(
        None,
        "seconds after which a round closes with at least half of its devices (default: wait)",
        flag="--round-timeout",
        minimum=1,
        commands=(COORDINATOR,),  # nothing is late in simulate's one process
    )


@dataclass(slots=True)
class MdganConfig:
    """MD-GAN (Hardy, Le Merrer, Sericola 2019): the generator stays at the coordinator; each
    device trains its own discriminator on generated batches and returns per-image feedback.
    Shares --devices, --batch-size and --non-iid with the federated mode."""

    COMMANDS: ClassVar[tuple[str, ...]] = CLASS_RULES

    k: int | None = option(
        None, "generated batches per iteration (default ceil(log2 N), as the paper)",
        flag="--k", minimum=1,
    )  # fmt: skip
    disc_steps: int = option(
        1, "discriminator steps L per device and iteration", flag="--disc-steps", minimum=1
    )
    swap_epochs: int = option(
        1, "swap the devices' discriminators along a seeded permutation every E local epochs",
        minimum=1, flag="--swap-epochs",
    )  # fmt: skip
    iterations: int | None = option(
        None, "generator updates I (default: enough for --epochs passes)", flag="--iterations",
        minimum=1,
    )  # fmt: skip


@dataclass(slots=True)
class TrackingConfig:
    """Experiment logging of train-local and the coordinator, beside history.csv."""

    COMMANDS: ClassVar[tuple[str, ...]] = (TRAIN_LOCAL, COORDINATOR)

    logger: str = option(
        "csv",
        "csv (history.csv only), tensorboard (event files under the output folder) or mlflow",
        flag="--logger",
        choices=("csv", "tensorboard", "mlflow"),
    )
    mlflow_uri: str | None = option(
        None,
        "MLflow tracking URI (default: sqlite:///<output folder>/mlflow.db)",
        flag="--mlflow-uri",
        holds_password=True,
    )
    experiment: str = option("ganfriends", "MLflow experiment name", flag="--experiment")


@dataclass(slots=True)
class HuggingFaceConfig:
    """Publishing the latest weights, samples and a model card to the Hugging Face Hub
    (train-local and the class coordinator; ``ganfriends.hub``)."""

    COMMANDS: ClassVar[tuple[str, ...]] = (TRAIN_LOCAL, COORDINATOR)

    enabled: bool = option(False, "push weights, samples and metadata to the Hub")
    repo_id: str | None = option(None, "target model repository, e.g. you/ganfriends-celeba")
    token: str | None = option(
        None,
        "write token (default: the HF_TOKEN env, then the `hf auth login` token)",
        secret=True,
    )
    push_interval: int = option(
        5, "push every N sample grids (the final state is always pushed)", minimum=1
    )
    endpoint: str | None = option(
        None, "Hub URL (default: the HF_ENDPOINT env, else https://huggingface.co)"
    )


@dataclass(slots=True)
class SlurmConfig:
    """``ganfriends slurm``: the sbatch script that runs train-local with torchrun on a cluster."""

    COMMANDS: ClassVar[tuple[str, ...]] = ("slurm",)

    nodes: int = option(1, "nodes to allocate (one torchrun per node)", flag="--nodes", minimum=1)
    gpus_per_node: int = option(
        0, "GPUs per node (0: a CPU job)", flag="--gpus-per-node", minimum=0
    )
    nproc_per_node: int | None = option(
        None, "training processes per node (default: --gpus-per-node, or 1 without GPUs)",
        flag="--nproc-per-node", minimum=1,
    )  # fmt: skip
    cpus_per_task: int | None = option(
        None, "CPU cores for each node's torchrun task", flag="--cpus-per-task", minimum=1
    )
    time: str = option("01:00:00", "wall-clock limit ([D-]HH:MM:SS)", flag="--time")
    partition: str | None = option(None, "SLURM partition", flag="--partition")
    account: str | None = option(None, "account (project) to charge", flag="--account")
    job_name: str = option("ganfriends", "job name", flag="--job-name")
    modules: str | None = option(
        None,
        "environment modules to load, space-separated (e.g. 'Python CUDA/12')",
        flag="--modules",
    )
    venv: str | None = option(
        None, "virtualenv to activate on the nodes (e.g. .venv)", flag="--venv"
    )
    rdzv_port: int | None = option(
        None,
        "TCP port of the c10d rendezvous on the first node (default: 20000 + the job id "
        "mod 10000, so that jobs sharing a node do not meet)",
        flag="--rdzv-port",
        minimum=1,
        maximum=65535,
    )
    script: str = option("ganfriends.sbatch", "where the sbatch script is written", flag="--script")
