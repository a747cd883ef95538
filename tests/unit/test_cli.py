"""The command line's config flags come from the config's sections."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from ganfriends.cli import build_parser, main
from ganfriends.config import command_options


def subcommands() -> dict[str, argparse.ArgumentParser]:
    (actions,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(actions.choices)


@pytest.mark.parametrize("command", sorted(subcommands()))
def test_a_commands_config_flags_are_the_options_that_name_it(command: str) -> None:
    parser = subcommands()[command]
    dests = {a.dest for a in parser._actions if "." in a.dest}
    assert dests == {key for key, _ in command_options(command)}


def test_flags_keep_their_names_and_reach_the_moved_options() -> None:
    args = build_parser().parse_args(
        ["coordinator", "--images-per-work-unit", "64", "--micro-batch", "32"]
    )
    assert vars(args)["coordinator.images_per_work_unit"] == "64"
    assert vars(args)["training.micro_batch"] == "32"
    local = build_parser().parse_args(["train-local", "--max-steps", "3", "--micro-batch", "4"])
    assert vars(local)["local.max_steps"] == "3"
    assert vars(local)["training.micro_batch"] == "4"


def config_command(
    text: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> tuple[dict[str, Any], str]:
    """``ganfriends config`` on a config file holding ``text``: the YAML it prints, its stderr."""
    monkeypatch.chdir(tmp_path)
    for name in [name for name in os.environ if name.startswith("GANFRIENDS_")]:
        monkeypatch.delenv(name)  # the file alone, whatever the test run's environment says
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    assert main(["config", "--config", str(path)]) == 0
    captured = capsys.readouterr()
    assert "# train-local, simulate, coordinator\ntraining:" in captured.out
    return yaml.safe_load(captured.out), captured.err


def test_the_config_command_prints_every_section_with_its_commands(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    printed, _ = config_command(
        "coordinator:\n  images_per_work_unit: 48\n", tmp_path, capsys, monkeypatch
    )
    assert printed["coordinator"]["images_per_work_unit"] == 48
    assert "images_per_work_unit" not in printed["training"]


def test_an_old_key_in_the_config_file_is_a_warning_naming_the_new_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    printed, err = config_command("training:\n  device: cpu\n", tmp_path, capsys, monkeypatch)
    assert printed["local"]["device"] == "cpu"
    path = tmp_path / "config.yaml"
    assert err == f"warning: config file {path}: training.device is now local.device\n"
