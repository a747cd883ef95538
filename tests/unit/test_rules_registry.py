"""The registry of modes: one registration is all the config, the CLI, a resumed run's settings
and ``runs.plan`` reading need, and every registered mode is documented."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from ganfriends.classroom.state import ignored_on_resume, run_defining
from ganfriends.cli import build_parser
from ganfriends.config import SECTIONS, Config, load_config, option_fields
from ganfriends.errors import ConfigError, GanError
from ganfriends.rules import make_rule, plan_from_dict
from ganfriends.rules.registry import Mode, mode_names, modes, register, unregister
from ganfriends.rules.sync import SyncRule
from ganfriends.rules.sync_plan import SyncPlan
from tests.unit.test_rules import MODEL

ROOT = Path(__file__).resolve().parents[2]

# A trivial mode defined here: the sync rule under another name, with a setting of its own
# (one a class run does not otherwise keep).
FAKE = Mode(
    name="echo",
    description="the sync rule again, registered by a test",
    plan=SyncPlan,
    rule=SyncRule,
    settings=("tracking.experiment",),
)


@pytest.fixture
def echo() -> Iterator[Mode]:
    register(FAKE)
    try:
        yield FAKE
    finally:
        unregister(FAKE.name)


def mode_config(mode: str) -> Config:
    return load_config(overrides={"coordinator.mode": mode}, env={}, default_file=None)


def subcommand_help(command: str, capsys: pytest.CaptureFixture[str]) -> str:
    """``ganfriends COMMAND --help``, its lines joined."""
    with pytest.raises(SystemExit):
        build_parser().parse_args([command, "--help"])
    return " ".join(capsys.readouterr().out.split())


def test_the_config_accepts_a_registered_mode(echo: Mode) -> None:
    assert mode_config("echo").coordinator.mode == "echo"


def test_the_config_refuses_a_mode_nobody_registered() -> None:
    with pytest.raises(ConfigError, match=r"coordinator\.mode must be one of sync, federated"):
        mode_config("echo")


def test_the_cli_describes_a_registered_mode(
    echo: Mode, capsys: pytest.CaptureFixture[str]
) -> None:
    for command in ("coordinator", "simulate"):
        text = subcommand_help(command, capsys)
        assert "echo: the sync rule again, registered by a test" in text
    # simulate's line in the list of commands
    assert "md-gan, echo) in one process" in " ".join(build_parser().format_help().split())


def test_a_registered_modes_settings_define_its_runs(echo: Mode) -> None:
    current, stored = mode_config("echo"), mode_config("echo")
    current.tracking.experiment = "mine"
    current.given["tracking.experiment"] = "--experiment"

    assert "tracking.experiment" in run_defining("echo")
    assert ignored_on_resume(current, stored) == ["--experiment mine (the run's ganfriends)"]


def test_another_modes_settings_do_not_define_a_run(echo: Mode) -> None:
    current, stored = mode_config("sync"), mode_config("sync")
    current.tracking.experiment = "mine"
    current.given["tracking.experiment"] = "--experiment"

    assert ignored_on_resume(current, stored) == []


def test_a_registered_modes_plan_reads_back_and_builds_its_rule(echo: Mode) -> None:
    plan = SyncPlan(640, 7, 64, 3, 32, 2, update_rule="alternating")

    read = plan_from_dict("echo", plan.to_dict())

    assert read == plan
    assert isinstance(make_rule("echo", read, Config(), MODEL), SyncRule)


def test_a_stored_plan_of_an_unknown_mode_names_the_upgrade() -> None:
    with pytest.raises(GanError, match=r"'echo'.*upgrade ganfriends"):
        plan_from_dict("echo", {})


def test_a_mode_is_registered_once_under_a_name_the_database_accepts() -> None:
    with pytest.raises(ValueError, match="registered already"):
        register(dataclasses.replace(FAKE, name="sync"))
    with pytest.raises(ValueError, match="lower-case"):
        register(dataclasses.replace(FAKE, name="Echo mode"))
    assert "Echo mode" not in mode_names()


@pytest.mark.parametrize("mode", modes(), ids=lambda m: m.name)
def test_a_modes_settings_are_config_options(mode: Mode) -> None:
    for entry in (*mode.settings, *(f.key for f in mode.fixed)):
        section, _, name = entry.partition(".")
        assert section in SECTIONS, entry
        assert not name or name in option_fields(section), entry


@pytest.mark.parametrize("mode", mode_names())
def test_every_registered_mode_is_documented(mode: str) -> None:
    # The researcher's page of the docs site (docs/researcher.md) has each mode's commands.
    page = (ROOT / "docs" / "researcher.md").read_text(encoding="utf-8")
    template = (ROOT / "config.yaml.template").read_text(encoding="utf-8")
    listed = re.search(r"simulate --mode ([\w|-]+)", page)
    mode_line = re.search(r"^\s*mode: .*$", template, re.MULTILINE)

    assert f"--mode {mode}" in page  # its section's commands
    assert listed is not None and mode in listed.group(1).split("|")
    assert mode_line is not None and re.search(rf"\b{re.escape(mode)}\b", mode_line.group(0))
