"""The training modes ganfriends knows: each rule file declares its :class:`Mode` once, and one
``register`` line in ``rules/__init__.py`` adds it.

Everything that names modes derives from here: the config's ``--mode`` choices and help (and
so ``coordinator``'s and ``simulate``'s), the settings a resumed class run keeps
(:func:`ganfriends.classroom.state.run_defining`), reading ``runs.plan`` back and building a
run's rule. The database holds no list of modes (migration 0012): a run of a mode this version
does not know is refused when its plan is read, with what to upgrade.

This module imports no config at run time (the config imports it for its choices).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ganfriends import __version__
from ganfriends.errors import GanError

if TYPE_CHECKING:
    from ganfriends.config import Config
    from ganfriends.data import ImageDataset
    from ganfriends.models import ModelConfig
    from ganfriends.rules.base import Plan, Rule

# A mode's name as --mode, runs.mode and the CHECK of migration 0012 accept it.
NAME = re.compile(r"[a-z][a-z0-9-]*")

# Settings that fix the computation of any run, whatever trains it (a class run of any mode, or
# train-local): a resumed run takes them from where the run was stored, never from the command.
SHARED_RUN_DEFINING = (
    "training.learning_rate",
    "training.beta1",
    "training.beta2",
    "training.loss",
    "training.update_rule",
    "training.seed",
    "data.dataset",
)

# (plan, the run's config, its architecture, its dataset or None) -> the run's rule.
RuleFactory = Callable[[Any, "Config", "ModelConfig", "ImageDataset | None"], "Rule"]


@dataclass(frozen=True)
class Fixed:
    """A setting a mode does not apply: a run of the mode refuses any value but ``value``, so
    that a setting never looks as if it applied (``why`` ends the message)."""

    key: str  # "section.option"
    value: object
    why: str


@dataclass(frozen=True)
class Mode:
    """One training mode, as its rule file declares it."""

    name: str  # --mode and runs.mode
    description: str  # one line, for --mode's help and the docs
    plan: type[Plan]  # its from_config makes a new run's plan, its from_dict reads runs.plan
    rule: RuleFactory  # builds the run's rule
    # The rule reads the dataset (its labels place images on devices) at the coordinator.
    needs_dataset: bool = False
    # Config sections or "section.option" keys holding its own settings: a resumed run of the
    # mode keeps the run's values (its section's COMMANDS give them flags).
    settings: tuple[str, ...] = ()
    fixed: tuple[Fixed, ...] = ()


_MODES: dict[str, Mode] = {}


def register(mode: Mode) -> Mode:
    """Add ``mode`` (after the others: the CLI lists modes in registration order)."""
    if not NAME.fullmatch(mode.name):
        raise ValueError(f"mode name {mode.name!r}: lower-case letters, digits and '-'")
    if mode.name in _MODES:
        raise ValueError(f"mode {mode.name!r} is registered already")
    _MODES[mode.name] = mode
    return mode


def unregister(name: str) -> None:
    """Remove a registered mode (a test's)."""
    del _MODES[name]


def modes() -> tuple[Mode, ...]:
    """Every registered mode, in registration order."""
    return tuple(_MODES.values())


def mode_names() -> tuple[str, ...]:
    """The names ``--mode`` accepts."""
    return tuple(_MODES)


def modes_help() -> str:
    """``--mode``'s help: each mode's name and line."""
    return "; ".join(f"{m.name}: {m.description}" for m in _MODES.values())


def get_mode(name: str) -> Mode:
    """The mode a new run asks for; a one-line error naming the choices if there is none."""
    try:
        return _MODES[name]
    except KeyError:
        raise GanError(f"unknown mode {name!r}: choose one of {', '.join(_MODES)}") from None


def stored_mode(name: str) -> Mode:
    """The mode of a stored run; a one-line error naming the upgrade if this version lacks it."""
    try:
        return _MODES[name]
    except KeyError:
        raise GanError(
            f"run of mode {name!r}, which ganfriends {__version__} does not have (it knows "
            f"{', '.join(_MODES)}): upgrade ganfriends (pip install --upgrade ganfriends)"
        ) from None


def refused_setting(mode: Mode, config: Config) -> str | None:
    """Why ``config`` cannot make a run of ``mode`` (a setting it fixes has another value)."""
    for fixed in mode.fixed:
        section, _, option = fixed.key.partition(".")
        value = getattr(getattr(config, section), option)
        if value != fixed.value:
            where = config.given.get(fixed.key, fixed.key)
            others = " or ".join(m.name for m in _MODES.values() if not _fixes(m, fixed.key))
            return f"{where} {value} applies to --mode {others} only: {mode.name} {fixed.why}"
    return None


def _fixes(mode: Mode, key: str) -> bool:
    return any(f.key == key for f in mode.fixed)
