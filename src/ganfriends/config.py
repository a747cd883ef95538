"""The one typed configuration object, with its documented defaults.

Sources, in increasing precedence: the YAML file (``--config F``; ``./config.yaml`` when present),
the environment (``GANFRIENDS_<SECTION>_<OPTION>``, e.g. ``GANFRIENDS_TRAINING_BATCH_SIZE=64`` or
``GANFRIENDS_DATABASE_URL``), then command-line flags. Every value is converted and validated in one
place, and an error names the option and where its bad value came from.

The sections follow the seed project's ``config.yaml.template``: database, training, worker, data,
huggingface. ``config.yaml.template`` at the repository root lists every option.
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import yaml

from ganfriends.errors import ConfigError
from ganfriends.rules import registry

REDACTED = "***"  # what a secret reads as in runs.config, checkpoints and logs

ENV_PREFIX = "GANFRIENDS_"
# A Hub repository id as the Hub accepts it: owner/name, letters, digits, "-", "_", ".".
REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}")
DEFAULT_CONFIG_FILE = "config.yaml"


def option(
    default: Any,
    help: str | Callable[[], str],
    *,
    flag: str | None = None,
    choices: tuple[str, ...] | Callable[[], tuple[str, ...]] | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    secret: bool = False,
    holds_password: bool = False,
) -> Any:
    """A config field: its default, its help text, and how it is checked and exposed.

    ``help`` and ``choices`` may be functions, asked each time (``--mode``'s come from the
    registry of modes, which may grow after this module is loaded)."""
    meta = {
        "help": help,
        "flag": flag,
        "choices": choices,
        "minimum": minimum,
        "maximum": maximum,
        "secret": secret,
        "holds_password": holds_password,  # a URL whose password part is masked when stored
    }
    return field(default=default, metadata=meta)


@dataclass
class DatabaseConfig:
    """Where the PostgreSQL database that coordinates a class run lives."""

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


@dataclass
class TrainingConfig:
    """What is trained and how: model, optimizer, schedule, outputs."""

    epochs: int = option(50, "passes over the dataset", flag="--epochs", minimum=1)
    batch_size: int = option(128, "images per optimizer step", flag="--batch-size", minimum=1)
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
    max_steps: int | None = option(
        None,
        "stop once the run has taken N optimizer steps (smoke runs)",
        flag="--max-steps",
        minimum=1,
    )
    sample_interval: int = option(
        1, "write a sample grid every N epochs", flag="--sample-interval", minimum=1
    )
    checkpoint_interval: int = option(
        5,
        "keep a checkpoint every N epochs (latest.pt is always kept)",
        flag="--checkpoint-interval",
        minimum=1,
    )
    output_dir: str = option(
        "outputs_local", "where samples, checkpoints and curves go", flag="--output-dir"
    )
    device: str = option(
        "auto", "auto, cpu, cuda, cuda:N (one GPU of several) or mps", flag="--device"
    )
    eval_interval: int | None = option(
        None,
        "score the generator (FID, KID, precision/recall) every N steps (default: never)",
        flag="--eval-interval",
        minimum=1,
    )
    eval_samples: int = option(
        2000, "generated images per score during training", flag="--eval-samples", minimum=8
    )
    # Class training: the run's schedule, fixed when the coordinator creates the run.
    images_per_work_unit: int = option(
        320, "images in one work unit", flag="--images-per-work-unit", minimum=1
    )
    workunits_per_update: int = option(
        3, "work units aggregated into one optimizer step", flag="--workunits-per-update", minimum=1
    )
    micro_batch: int = option(
        64,
        "images per forward pass inside a unit; a run setting, since BatchNorm makes "
        "gradients depend on it",
        flag="--micro-batch",
        minimum=1,
    )
    transfer_dtype: str = option(
        "float32",
        "precision of the gradients a worker uploads (weights stay float32); bfloat16 halves "
        "the upload bytes",
        flag="--transfer-dtype",
        choices=("float32", "bfloat16"),
    )
    work_unit_timeout: float = option(
        300.0,
        "seconds a claimed unit may go without a heartbeat before it is handed out again",
        flag="--work-unit-timeout",
        minimum=1,
    )


@dataclass
class WorkerConfig:
    """How a student's worker presents itself and paces its polling (class training)."""

    name: str | None = option(
        None, "name on the leaderboard (default: the hostname)", flag="--name"
    )
    poll_interval: float = option(5.0, "seconds between polls when there is no work", minimum=0.01)
    heartbeat_interval: float = option(
        30.0, "seconds between heartbeats while computing", minimum=0.1
    )
    units_per_claim: int = option(
        1,
        "units to claim and upload at once (fewer round trips for a fast GPU; the run caps it)",
        flag="--units-per-claim",
        minimum=1,
    )
    # Docker's stop waits 10 s before SIGKILL, Colab and systemd about as long: 5 s leaves room.
    stop_grace: float = option(
        5.0,
        "seconds a stopped worker may spend finishing its unit before it gives the unit back",
        flag="--stop-grace",
        minimum=0.0,
    )


@dataclass
class DataConfig:
    """Which images to train on and where they are."""

    dataset: str = option(
        "fashion-mnist",
        "fashion-mnist, mnist, cifar10, celeba or folder",
        flag="--dataset",
        choices=("fashion-mnist", "mnist", "cifar10", "celeba", "folder"),
    )
    dataset_path: str | None = option(
        None, "dataset location (required for folder)", flag="--dataset-path"
    )
    data_dir: str | None = option(
        None,
        "where downloaded datasets are kept (default ~/.local/share/ganfriends)",
        flag="--data-dir",
    )
    num_workers: int = option(
        2, "image decoding processes for file datasets", flag="--num-workers", minimum=0
    )
    download: bool = option(True, "download a missing dataset when the network allows")


@dataclass
class CoordinatorConfig:
    """The instructor's coordinator: outputs, pacing and storage retention."""

    mode: str = option("sync", registry.modes_help, flag="--mode", choices=registry.mode_names)
    output_dir: str = option(
        "outputs", "where sample grids and checkpoints go", flag="--output-dir"
    )
    sample_interval: int = option(
        10,
        "write a sample grid and checkpoint every N updates",
        flag="--sample-interval",
        minimum=1,
    )
    max_iterations: int | None = option(
        None, "finish the run after N updates (optimizer steps)", flag="--max-iterations", minimum=1
    )
    new_run: bool = option(
        False, "stop the running run and start a new one (default: resume it)", flag="--new-run"
    )
    run_name: str | None = option(
        None, "a name for a new run (default: dataset and seed)", flag="--run-name"
    )
    max_backups: int = option(
        1,
        "extra copies of a straggler's unit handed to idle workers",
        flag="--max-backups",
        minimum=0,
    )
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
    )
    keep_last_versions: int = option(3, "newest weight versions kept in the database", minimum=1)
    keep_every_versions: int = option(100, "also keep every Nth weight version", minimum=1)
    poll_interval: float = option(0.1, "seconds between checks for finished units", minimum=0.01)
    eval_interval: int | None = option(
        None,
        "score the generator (FID, KID, precision/recall) every N updates (default: never)",
        flag="--eval-interval",
        minimum=1,
    )


@dataclass
class FederatedConfig:
    """Federated rounds (FeGAN): devices hold fixed shards; each round a fraction of them runs
    local steps from the round's model and the coordinator combines their deltas."""

    devices: int = option(
        10,
        "devices N: federated clients (plus device 0, FeGAN's server shard); md-gan discriminators",
        flag="--devices",
        minimum=1,
    )
    fraction: float = option(
        0.2, "fraction C of the clients chosen per round", flag="--fraction", minimum=0, maximum=1
    )
    local_steps: int = option(
        30, "local alternating steps E per device and round", flag="--local-steps", minimum=1
    )
    batch_size: int = option(
        50,
        "images per local step B (md-gan: per device and batch b)",
        flag="--batch-size",
        minimum=1,
    )
    rounds: int | None = option(
        None, "rounds R (default: enough rounds for --epochs passes)", flag="--rounds", minimum=1
    )
    non_iid: bool = option(False, "FeGAN's non-iid partition (needs labels)", flag="--non-iid")
    magic_num: int = option(
        3000,
        "FeGAN's magic_num: per-class cap of the non-iid partition",
        flag="--magic-num",
        minimum=1,
    )
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
    )
    local_state: str = option(
        "keep",
        "keep: a device's local Adam moments carry over between its rounds (FeGAN; they cross "
        "the database both ways); reset: a fresh local Adam each round (nothing but the model "
        "and its delta crosses)",
        flag="--local-state",
        choices=("keep", "reset"),
    )
    server_optimizer: str = option(
        "sgd",
        "the server's outer optimizer on the combined delta: sgd (lr 1 = FedAvg), nesterov, adam",
        flag="--server-optimizer",
        choices=("sgd", "nesterov", "adam"),
    )
    server_lr: float = option(
        1.0, "the server optimizer's learning rate", flag="--server-lr", minimum=0
    )


@dataclass
class MdganConfig:
    """MD-GAN (Hardy, Le Merrer, Sericola 2019): the generator stays at the coordinator; each
    device trains its own discriminator on generated batches and returns per-image feedback.
    Shares --devices, --batch-size and --non-iid with the federated mode."""

    k: int | None = option(
        None,
        "generated batches per iteration (default ceil(log2 N), as the paper)",
        flag="--k",
        minimum=1,
    )
    disc_steps: int = option(
        1, "discriminator steps L per device and iteration", flag="--disc-steps", minimum=1
    )
    swap_epochs: int = option(
        1,
        "swap the devices' discriminators along a seeded permutation every E local epochs",
        flag="--swap-epochs",
        minimum=1,
    )
    iterations: int | None = option(
        None,
        "generator updates I (default: enough for --epochs passes)",
        flag="--iterations",
        minimum=1,
    )


@dataclass
class HuggingFaceConfig:
    """Publishing the latest weights, samples and a model card to the Hugging Face Hub
    (train-local and the class coordinator; ``ganfriends.hub``)."""

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


@dataclass
class LocalConfig:
    """Options of train-local alone: micro-batching and its torchrun (data-parallel) branch."""

    micro_batch: int | None = option(
        None,
        "images per forward pass (default: the whole batch, or each process's share under "
        "torchrun); BatchNorm makes it a run setting",
        flag="--micro-batch",
        minimum=1,
    )
    dist_backend: str = option(
        "auto",
        "torch.distributed backend under torchrun: auto (nccl on CUDA, gloo otherwise), gloo, nccl",
        flag="--dist-backend",
        choices=("auto", "gloo", "nccl"),
    )
    strategy: str = option(
        "auto",
        "data-parallel strategy under torchrun: auto (= ddp), ddp (gradients all-reduced between "
        "each network's backward and its step), deepspeed (each network steps through a DeepSpeed "
        "engine; pip install 'ganfriends[deepspeed]')",
        flag="--strategy",
        choices=("auto", "ddp", "deepspeed"),
    )


@dataclass
class TrackingConfig:
    """Experiment logging of train-local and the coordinator, beside history.csv."""

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


@dataclass
class SlurmConfig:
    """``ganfriends slurm``: the sbatch script that runs train-local with torchrun on a cluster."""

    nodes: int = option(1, "nodes to allocate (one torchrun per node)", flag="--nodes", minimum=1)
    gpus_per_node: int = option(
        0, "GPUs per node (0: a CPU job)", flag="--gpus-per-node", minimum=0
    )
    nproc_per_node: int | None = option(
        None,
        "training processes per node (default: --gpus-per-node, or 1 without GPUs)",
        flag="--nproc-per-node",
        minimum=1,
    )
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


@dataclass
class Config:
    """All options, by section."""

    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    worker: WorkerConfig = field(default_factory=WorkerConfig)
    data: DataConfig = field(default_factory=DataConfig)
    coordinator: CoordinatorConfig = field(default_factory=CoordinatorConfig)
    federated: FederatedConfig = field(default_factory=FederatedConfig)
    mdgan: MdganConfig = field(default_factory=MdganConfig)
    huggingface: HuggingFaceConfig = field(default_factory=HuggingFaceConfig)
    local: LocalConfig = field(default_factory=LocalConfig)
    slurm: SlurmConfig = field(default_factory=SlurmConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    # Options given explicitly (file, environment or flag), by key, with where each came from:
    # what a resumed run reports it ignores. Not an option itself (init=False).
    given: dict[str, str] = field(default_factory=dict, init=False, repr=False, compare=False)

    def to_dict(self, *, redact: bool = True) -> dict[str, dict[str, Any]]:
        """Plain nested dict for checkpoints and logs; secrets masked unless ``redact=False``."""
        out: dict[str, dict[str, Any]] = {}
        for section in dataclasses.fields(self):
            if not section.init:
                continue
            values: dict[str, Any] = {}
            for f in dataclasses.fields(getattr(self, section.name)):
                value = getattr(getattr(self, section.name), f.name)
                if redact and f.metadata["secret"] and value is not None:
                    value = REDACTED
                elif redact and f.metadata["holds_password"] and value is not None:
                    value = redact_url(value)
                values[f.name] = value
            out[section.name] = values
        return out


def redact_url(url: str) -> str:
    """``url`` with its password, if any, replaced by ``***`` (runs.config, checkpoints, logs)."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    try:
        parts = conninfo_to_dict(url)
    except Exception:  # not a URL libpq reads: nothing of it is worth keeping
        return REDACTED
    if not parts.get("password"):
        return url
    parts["password"] = REDACTED
    return make_conninfo("", **parts)


def config_from_stored(data: Mapping[str, Any]) -> Config:
    """The typed config of a stored run (``runs.config``, a checkpoint's ``run_config``).

    Values are converted and checked like any other source; options this version does not know
    (a run created by another version) are ignored, and missing ones take their defaults.
    Secrets were masked when the run was stored and stay unset.
    """
    sections: dict[str, Any] = {}
    for section in SECTIONS:
        raw = data.get(section) or {}
        values: dict[str, Any] = {}
        for name, f in option_fields(section).items():
            masked = f.metadata["secret"] or f.metadata["holds_password"]
            if name in raw and not (masked and REDACTED in str(raw[name])):
                values[name] = _convert(f"{section}.{name}", raw[name], "the stored run config")
        sections[section] = SECTIONS[section](**values)
    return Config(**sections)


# `from __future__ import annotations` leaves field types as strings: resolve them once.
_SECTION_TYPES = typing.get_type_hints(Config)
SECTIONS: dict[str, type[Any]] = {
    f.name: _SECTION_TYPES[f.name] for f in dataclasses.fields(Config) if f.init
}


def option_fields(section: str) -> dict[str, dataclasses.Field[Any]]:
    """The fields of one section, by name."""
    return {f.name: f for f in dataclasses.fields(SECTIONS[section])}


def option_help(f: dataclasses.Field[Any]) -> str:
    """An option's help text."""
    text = f.metadata["help"]
    return str(text() if callable(text) else text)


def option_choices(f: dataclasses.Field[Any]) -> tuple[str, ...] | None:
    """The values an option accepts, or None for any of its type."""
    choices = f.metadata["choices"]
    return tuple(choices()) if callable(choices) else choices


def is_switch(key: str) -> bool:
    """True for boolean options, whose flags take no value."""
    section, name = key.split(".")
    return _base_type(section, name)[0] is bool


def _base_type(section: str, name: str) -> tuple[type, bool]:
    """The field's scalar type and whether it may be None."""
    hint = typing.get_type_hints(SECTIONS[section])[name]
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (Union, types.UnionType) and type(None) in args:
        (inner,) = [a for a in args if a is not type(None)]
        return inner, True
    return hint, False


def _convert(key: str, value: Any, source: str) -> Any:
    """Convert a raw value (YAML scalar or string) to the field's type and check its constraints."""
    section, name = key.split(".")
    f = option_fields(section)[name]
    kind, optional = _base_type(section, name)

    def bad(why: str) -> ConfigError:
        return ConfigError(f"invalid config: {key} {why}, got {value!r} (from {source})")

    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "null")):
        if optional:
            return None
        raise bad("must be set")
    if kind is bool:
        if isinstance(value, bool):
            result: Any = value
        elif isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on"):
            result = True
        elif isinstance(value, str) and value.strip().lower() in ("0", "false", "no", "off"):
            result = False
        else:
            raise bad("must be true or false")
    elif kind is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise bad("must be a whole number")
        try:
            result = int(value)
        except (TypeError, ValueError):
            raise bad("must be a whole number") from None
    elif kind is float:
        if isinstance(value, bool):
            raise bad("must be a number")
        try:
            result = float(value)
        except (TypeError, ValueError):
            raise bad("must be a number") from None
        if result != result or result in (float("inf"), float("-inf")):
            raise bad("must be a finite number")
    else:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise bad("must be a string")
        result = str(value)

    meta, choices = f.metadata, option_choices(f)
    if choices is not None and str(result) not in choices:
        raise bad(f"must be one of {', '.join(choices)}")
    if meta["minimum"] is not None and result < meta["minimum"]:
        raise bad(f"must be >= {meta['minimum']}")
    if meta["maximum"] is not None and result > meta["maximum"]:
        raise bad(f"must be <= {meta['maximum']}")
    return result


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a config file into ``{"section.option": value}``; unknown names are errors."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        raise ConfigError(f"config file {path} is not valid YAML{line}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"config file {path} must be a mapping of sections, like config.yaml.template"
        )
    flat: dict[str, Any] = {}
    for section, values in data.items():
        if section not in SECTIONS:
            raise ConfigError(
                f"config file {path}: unknown section {section!r} (sections: {', '.join(SECTIONS)})"
            )
        if values is None:
            continue
        if not isinstance(values, dict):
            raise ConfigError(f"config file {path}: section {section!r} must be a mapping")
        known = option_fields(section)
        for name, value in values.items():
            if name not in known:
                raise ConfigError(
                    f"config file {path}: unknown option {section}.{name} "
                    f"(options: {', '.join(known)})"
                )
            flat[f"{section}.{name}"] = value
    return flat


def env_name(key: str) -> str:
    """``training.batch_size`` -> ``GANFRIENDS_TRAINING_BATCH_SIZE``."""
    return ENV_PREFIX + key.replace(".", "_").upper()


def read_env(env: Mapping[str, str]) -> dict[str, str]:
    """Pick the ``GANFRIENDS_*`` variables that name an option."""
    out: dict[str, str] = {}
    for section in SECTIONS:
        for name in option_fields(section):
            key = f"{section}.{name}"
            if env_name(key) in env:
                out[key] = env[env_name(key)]
    return out


def load_config(
    path: str | Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    default_file: str | Path | None = DEFAULT_CONFIG_FILE,
) -> Config:
    """Build the config from file < environment < ``overrides`` (``{"training.epochs": 3}``).

    ``path`` None falls back to ``$GANFRIENDS_CONFIG``, then to ``default_file`` if it exists.
    """
    env = os.environ if env is None else env
    layers: list[tuple[dict[str, Any], str]] = []
    file = (
        Path(path)
        if path
        else (Path(env["GANFRIENDS_CONFIG"]) if env.get("GANFRIENDS_CONFIG") else None)
    )
    if file is None and default_file is not None and Path(default_file).is_file():
        file = Path(default_file)
    if file is not None:
        if not file.is_file():
            raise ConfigError(f"config file {file} does not exist")
        layers.append((read_yaml(file), str(file)))
    layers.append((read_env(env), "environment"))
    if overrides:
        for key in overrides:
            section, _, name = key.partition(".")
            if section not in SECTIONS or name not in option_fields(section):
                raise ConfigError(f"unknown option {key}")
        layers.append((dict(overrides), "command line"))

    values: dict[str, dict[str, Any]] = {section: {} for section in SECTIONS}
    given: dict[str, str] = {}
    for layer, origin in layers:
        for key, raw in layer.items():
            section, name = key.split(".")
            f = option_fields(section)[name]
            source = origin
            if origin == "environment":
                source = env_name(key)
            elif origin == "command line" and f.metadata["flag"]:
                source = f.metadata["flag"]
            values[section][name] = _convert(key, raw, source)
            given[key] = source
    config = Config(**{section: SECTIONS[section](**vals) for section, vals in values.items()})
    config.given = given
    hub = config.huggingface
    if hub.enabled and not (hub.repo_id and REPO_ID.fullmatch(hub.repo_id)):
        source = given.get("huggingface.repo_id", "its default")
        raise ConfigError(
            f"invalid config: huggingface.enabled needs huggingface.repo_id as owner/name, "
            f"got {hub.repo_id!r} (from {source})"
        )
    return config


def flag_options(
    *sections: str, exclude: tuple[str, ...] = ()
) -> list[tuple[str, dataclasses.Field[Any]]]:
    """Options of these sections that have a command-line flag, as (key, field) pairs.

    ``sections`` may also name single options (``"database.url"``), an option named twice
    counts once; ``exclude`` drops options.
    """
    keys: dict[str, dataclasses.Field[Any]] = {}
    for entry in sections:
        section, _, only = entry.partition(".")
        for name, f in option_fields(section).items():
            key = f"{section}.{name}"
            if f.metadata["flag"] and (not only or name == only) and key not in exclude:
                keys[key] = f
    return list(keys.items())
