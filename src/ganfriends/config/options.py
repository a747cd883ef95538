"""How one config option is declared, converted and checked: the machinery under the sections.

An option is a dataclass field whose metadata holds its help, its flag, its checks and the
commands that read it (by default its section's ``COMMANDS``). Every value, whatever its source,
goes through :func:`convert`, so an error always names the option and where its value came from.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import field
from typing import Any, Union

from ganfriends.errors import ConfigError

REDACTED = "***"  # what a secret reads as in runs.config, checkpoints and logs

# The commands that read config options, by the name the command line gives them.
TRAIN_LOCAL = "train-local"
SIMULATE = "simulate"
COORDINATOR = "coordinator"
WORKER = "worker"
DOCTOR = "doctor"  # checks with the worker's connection, data, device and claim size
# Every run that trains a GAN: train-local, simulate and a class run's coordinator.
TRAINING_RUNS = (TRAIN_LOCAL, SIMULATE, COORDINATOR)
# The class run's rules: the coordinator's, and simulate's in one process.
CLASS_RULES = (SIMULATE, COORDINATOR)


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
    commands: tuple[str, ...] | None = None,
) -> Any:
    """A config field: its default, its help text, and how it is checked and exposed.

    ``commands`` names the commands whose flag it is when they are not its section's own (a
    section's option that only one of its commands reads, or one another command borrows).
    ``help`` and ``choices`` may be functions, asked each time (``--mode``'s come from the
    registry of modes, which may grow after the config is loaded).
    """
    meta = {
        "help": help,
        "flag": flag,
        "choices": choices,
        "minimum": minimum,
        "maximum": maximum,
        "secret": secret,
        "holds_password": holds_password,  # a URL whose password part is masked when stored
        "commands": commands,
    }
    return field(default=default, metadata=meta)


def commands_of(section: type[Any], f: dataclasses.Field[Any]) -> tuple[str, ...]:
    """The commands that read this option: its own list, else its section's."""
    own: tuple[str, ...] | None = f.metadata["commands"]
    return own if own is not None else tuple(section.COMMANDS)


def base_type(section: type[Any], name: str) -> tuple[type, bool]:
    """The field's scalar type and whether it may be None."""
    hint = typing.get_type_hints(section)[name]
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (Union, types.UnionType) and type(None) in args:
        (inner,) = [a for a in args if a is not type(None)]
        return inner, True
    return hint, False


def _scalar(kind: type, value: Any, bad: typing.Callable[[str], ConfigError]) -> Any:
    """``value`` as a ``kind`` (bool, int, float or str), or the error ``bad`` makes."""
    if kind is bool:
        if isinstance(value, bool):
            return value
        word = value.strip().lower() if isinstance(value, str) else None
        if word in ("1", "true", "yes", "on"):
            return True
        if word in ("0", "false", "no", "off"):
            return False
        raise bad("must be true or false")
    if kind is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise bad("must be a whole number")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise bad("must be a whole number") from None
    if kind is float:
        if isinstance(value, bool):
            raise bad("must be a number")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise bad("must be a number") from None
        if number != number or number in (float("inf"), float("-inf")):
            raise bad("must be a finite number")
        return number
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise bad("must be a string")
    return str(value)


def convert(key: str, section: type[Any], value: Any, source: str) -> Any:
    """Convert a raw value (YAML scalar or string) to the field's type and check its constraints."""
    name = key.split(".")[1]
    meta = {f.name: f for f in dataclasses.fields(section)}[name].metadata
    kind, optional = base_type(section, name)

    def bad(why: str) -> ConfigError:
        return ConfigError(f"invalid config: {key} {why}, got {value!r} (from {source})")

    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "null")):
        if optional:
            return None
        raise bad("must be set")
    result = _scalar(kind, value, bad)
    choices = option_choices(meta)
    if choices is not None and str(result) not in choices:
        raise bad(f"must be one of {', '.join(choices)}")
    if meta["minimum"] is not None and result < meta["minimum"]:
        raise bad(f"must be >= {meta['minimum']}")
    if meta["maximum"] is not None and result > meta["maximum"]:
        raise bad(f"must be <= {meta['maximum']}")
    return result


def option_help(meta: Mapping[str, Any]) -> str:
    """An option's help text, from its field's metadata."""
    text = meta["help"]
    return str(text() if callable(text) else text)


def option_choices(meta: Mapping[str, Any]) -> tuple[str, ...] | None:
    """The values an option accepts (None: any of its type), from its field's metadata."""
    choices = meta["choices"]
    return tuple(choices()) if callable(choices) else choices


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


def stored_value(f: dataclasses.Field[Any], value: Any, *, redact: bool) -> Any:
    """An option's value as runs.config, checkpoints and logs keep it: secrets masked."""
    if not redact or value is None:
        return value
    if f.metadata["secret"]:
        return REDACTED
    if f.metadata["holds_password"]:
        return redact_url(value)
    return value
