"""The one typed configuration object, and how it is read from its sources.

Sources, in increasing precedence: the YAML file (``--config F``; ``./config.yaml`` when present),
the environment (``GANFRIENDS_<SECTION>_<OPTION>``, e.g. ``GANFRIENDS_TRAINING_BATCH_SIZE=64`` or
``GANFRIENDS_DATABASE_URL``), then command-line flags. Every value is converted and validated in one
place, and an error names the option and where its bad value came from. An option that moved to
another section (``MOVED``) is still read under its old name, with a note naming the new one.
"""

from __future__ import annotations

import dataclasses
import os
import re
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ganfriends.config import modes, sections
from ganfriends.config.options import REDACTED, base_type, commands_of, convert, stored_value
from ganfriends.errors import ConfigError

ENV_PREFIX = "GANFRIENDS_"
# A Hub repository id as the Hub accepts it: owner/name, letters, digits, "-", "_", ".".
REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}")
DEFAULT_CONFIG_FILE = "config.yaml"

# Options that moved when the sections were made to match the commands: the old name still works
# in config files, the environment, overrides and stored run configs.
MOVED = {
    "training.images_per_work_unit": "coordinator.images_per_work_unit",
    "training.workunits_per_update": "coordinator.workunits_per_update",
    "training.transfer_dtype": "coordinator.transfer_dtype",
    "training.work_unit_timeout": "coordinator.work_unit_timeout",
    "training.max_steps": "local.max_steps",
    "training.sample_interval": "local.sample_interval",
    "training.checkpoint_interval": "local.checkpoint_interval",
    "training.output_dir": "local.output_dir",
    "training.device": "local.device",
    "training.eval_interval": "local.eval_interval",
    "data.num_workers": "local.num_workers",
    "local.micro_batch": "training.micro_batch",  # one micro-batch for every run
    # Local steps and the outer step serve the sync mode's --local-steps and federated alike.
    "federated.local_steps": "coordinator.local_steps",
    "federated.server_optimizer": "coordinator.outer_optimizer",
    "federated.server_lr": "coordinator.outer_lr",
    "federated.local_state": "coordinator.local_state",
}


@dataclass
class Config:
    """All options, by section."""

    database: sections.DatabaseConfig = field(default_factory=sections.DatabaseConfig)
    training: sections.TrainingConfig = field(default_factory=sections.TrainingConfig)
    data: sections.DataConfig = field(default_factory=sections.DataConfig)
    local: sections.LocalConfig = field(default_factory=sections.LocalConfig)
    coordinator: sections.CoordinatorConfig = field(default_factory=sections.CoordinatorConfig)
    worker: sections.WorkerConfig = field(default_factory=sections.WorkerConfig)
    federated: modes.FederatedConfig = field(default_factory=modes.FederatedConfig)
    mdgan: modes.MdganConfig = field(default_factory=modes.MdganConfig)
    tracking: modes.TrackingConfig = field(default_factory=modes.TrackingConfig)
    huggingface: modes.HuggingFaceConfig = field(default_factory=modes.HuggingFaceConfig)
    slurm: modes.SlurmConfig = field(default_factory=modes.SlurmConfig)
    # Options given explicitly (file, environment or flag), by key, with where each came from:
    # what a resumed run reports it ignores. Not an option itself (init=False).
    given: dict[str, str] = field(default_factory=dict, init=False, repr=False, compare=False)
    # "GANFRIENDS_TRAINING_DEVICE is now GANFRIENDS_LOCAL_DEVICE": old names read, for the CLI to
    # pass on.
    renamed: list[str] = field(default_factory=list, init=False, repr=False, compare=False)

    def to_dict(self, *, redact: bool = True) -> dict[str, dict[str, Any]]:
        """Plain nested dict for checkpoints and logs; secrets masked unless ``redact=False``."""
        return {
            section: {
                f.name: stored_value(f, getattr(getattr(self, section), f.name), redact=redact)
                for f in dataclasses.fields(kind)
            }
            for section, kind in SECTIONS.items()
        }


# `from __future__ import annotations` leaves field types as strings: resolve them once.
_SECTION_TYPES = typing.get_type_hints(Config)
SECTIONS: dict[str, type[Any]] = {
    f.name: _SECTION_TYPES[f.name] for f in dataclasses.fields(Config) if f.init
}


def option_fields(section: str) -> dict[str, dataclasses.Field[Any]]:
    """The fields of one section, by name."""
    return {f.name: f for f in dataclasses.fields(SECTIONS[section])}


def is_switch(key: str) -> bool:
    """True for boolean options, whose flags take no value."""
    section, name = key.split(".")
    return base_type(SECTIONS[section], name)[0] is bool


def env_name(key: str) -> str:
    """``training.batch_size`` -> ``GANFRIENDS_TRAINING_BATCH_SIZE``."""
    return ENV_PREFIX + key.replace(".", "_").upper()


def command_options(command: str) -> list[tuple[str, dataclasses.Field[Any]]]:
    """The options whose flags ``command`` takes, as (key, field) pairs in section order."""
    return [
        (f"{section}.{f.name}", f)
        for section, kind in SECTIONS.items()
        for f in dataclasses.fields(kind)
        if f.metadata["flag"] and command in commands_of(kind, f)
    ]


def _known(key: str) -> bool:
    section, _, name = key.partition(".")
    return section in SECTIONS and name in option_fields(section)


def _current_names(
    pairs: Iterable[tuple[str, Any]],
    where: str,
    renamed: list[str],
    *,
    name: Callable[[str], str] = str,
) -> dict[str, Any]:
    """``{key: value}`` with moved options under their new keys; an old name is noted in
    ``renamed``, and one set beside its new name is an error (which would win is a guess)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        new = MOVED.get(key, key)
        if new != key:
            renamed.append(f"{where}: {name(key)} is now {name(new)}")
        if new in out:
            raise ConfigError(
                f"{where}: {name(key)} is now {name(new)}, which is set there too: keep one"
            )
        out[new] = value
    return out


def read_yaml(path: Path, renamed: list[str] | None = None) -> dict[str, Any]:
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
    pairs: list[tuple[str, Any]] = []
    for section, values in data.items():
        if section not in SECTIONS:
            raise ConfigError(
                f"config file {path}: unknown section {section!r} (sections: {', '.join(SECTIONS)})"
            )
        if values is None:
            continue
        if not isinstance(values, dict):
            raise ConfigError(f"config file {path}: section {section!r} must be a mapping")
        for name, value in values.items():
            key = f"{section}.{name}"
            if not (_known(key) or key in MOVED):
                raise ConfigError(
                    f"config file {path}: unknown option {key} "
                    f"(options: {', '.join(option_fields(section))})"
                )
            pairs.append((key, value))
    return _current_names(pairs, f"config file {path}", [] if renamed is None else renamed)


def read_env(env: Mapping[str, str], renamed: list[str] | None = None) -> dict[str, str]:
    """Pick the ``GANFRIENDS_*`` variables that name an option (or an option's old name)."""
    keys = [f"{s}.{n}" for s in SECTIONS for n in option_fields(s)] + list(MOVED)
    pairs = [(key, env[env_name(key)]) for key in keys if env_name(key) in env]
    return _current_names(pairs, "environment", [] if renamed is None else renamed, name=env_name)


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
    renamed: list[str] = []
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
        layers.append((read_yaml(file, renamed), str(file)))
    layers.append((read_env(env, renamed), "environment"))
    if overrides:
        for key in overrides:
            if not (_known(key) or key in MOVED):
                raise ConfigError(f"unknown option {key}")
        layers.append((_current_names(overrides.items(), "overrides", renamed), "command line"))

    values: dict[str, dict[str, Any]] = {section: {} for section in SECTIONS}
    given: dict[str, str] = {}
    for layer, origin in layers:
        for key, raw in layer.items():
            section, name = key.split(".")
            source = origin
            if origin == "environment":
                source = env_name(key) if env_name(key) in env else _old_env_name(key)
            elif origin == "command line" and option_fields(section)[name].metadata["flag"]:
                source = option_fields(section)[name].metadata["flag"]
            values[section][name] = convert(key, SECTIONS[section], raw, source)
            given[key] = source
    config = Config(**{section: SECTIONS[section](**vals) for section, vals in values.items()})
    config.given = given
    config.renamed = renamed
    _check_hub(config)
    return config


def _old_env_name(key: str) -> str:
    """The variable an option's value came from when it was given under its old name."""
    return next(env_name(old) for old, new in MOVED.items() if new == key)


def _check_hub(config: Config) -> None:
    """Publishing needs a repository to publish to: say so before a run starts, not after."""
    hub = config.huggingface
    if hub.enabled and not (hub.repo_id and REPO_ID.fullmatch(hub.repo_id)):
        source = config.given.get("huggingface.repo_id", "its default")
        raise ConfigError(
            f"invalid config: huggingface.enabled needs huggingface.repo_id as owner/name, "
            f"got {hub.repo_id!r} (from {source})"
        )


def config_from_stored(data: Mapping[str, Any]) -> Config:
    """The typed config of a stored run (``runs.config``, a checkpoint's ``run_config``).

    Values are converted and checked like any other source; options this version does not know
    (a run created by another version) are ignored, and missing ones take their defaults. A run
    stored before an option moved keeps its value under the new name (where the new name is not
    stored too). Secrets were masked when the run was stored and stay unset.
    """
    flat = {
        f"{section}.{name}": value
        for section, values in data.items()
        if isinstance(values, Mapping)
        for name, value in values.items()
    }
    for old, new in MOVED.items():
        if old in flat and new not in flat:
            flat[new] = flat[old]
    sections: dict[str, Any] = {}
    for section, kind in SECTIONS.items():
        values = {}
        for name, f in option_fields(section).items():
            raw = flat.get(f"{section}.{name}", REDACTED)
            masked = f.metadata["secret"] or f.metadata["holds_password"]
            if f"{section}.{name}" in flat and not (masked and REDACTED in str(raw)):
                values[name] = convert(f"{section}.{name}", kind, raw, "the stored run config")
        sections[section] = kind(**values)
    return Config(**sections)


def config_yaml(config: Config) -> str:
    """The config as a YAML file of its sections, each headed by the commands that read it
    (``ganfriends config``); secrets masked."""
    parts = []
    for section, values in config.to_dict().items():
        commands = ", ".join(SECTIONS[section].COMMANDS)
        body = yaml.safe_dump({section: values}, sort_keys=False, default_flow_style=False)
        parts.append(f"# {commands}\n{body}")
    return "\n".join(parts)
