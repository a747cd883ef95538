"""What every subcommand shares: its config flags, derived from the config's sections, and the
config it reads (file < environment < those flags)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from ganfriends.config import Config, command_options, env_name, is_switch, load_config, redact_url
from ganfriends.config.options import option_help

Handler = Callable[[argparse.Namespace], int]


def add_config_flags(parser: argparse.ArgumentParser, command: str) -> None:
    """One flag per config option ``command`` reads; unset flags leave file/env values alone."""
    parser.add_argument(
        "--config", metavar="FILE", help="YAML config file (default: ./config.yaml if present)"
    )
    for key, f in command_options(command):
        help_text = f"{option_help(f.metadata)} (default: {f.default}; env {env_name(key)})"
        if is_switch(key):
            how: dict[str, Any] = {"action": "store_const", "const": True}
        else:
            how = {"metavar": key.split(".")[1].upper()}
        parser.add_argument(
            f.metadata["flag"], dest=key, default=argparse.SUPPRESS, help=help_text, **how
        )


def config_from(args: argparse.Namespace) -> Config:
    """The config a command reads: its file and environment under its flags, with a warning
    for a password on the command line and for each option read under an old name."""
    overrides = {k: v for k, v in vars(args).items() if "." in k}
    url = overrides.get("database.url")
    if url and redact_url(url) != url:
        print(
            "warning: this --db URL holds a password, which any user of this machine can read "
            "(ps, shell history): pass it in GANFRIENDS_DATABASE_URL or config.yaml instead",
            file=sys.stderr,
        )
    config = load_config(args.config, overrides=overrides)
    for note in dict.fromkeys(config.renamed):  # old names keep working: say the new ones once
        print(f"warning: {note}", file=sys.stderr)
    return config


def command(
    commands: Any,
    verbose: argparse.ArgumentParser,
    name: str,
    help: str,
    func: Handler,
    description: str | None = None,
    **kwargs: Any,
) -> argparse.ArgumentParser:
    """The subcommand ``name`` with -v, the flags of the config options it reads, and its handler
    (described by the handler's docstring unless ``description`` says otherwise)."""
    parser: argparse.ArgumentParser = commands.add_parser(
        name,
        parents=[verbose],
        help=help,
        description=description or func.__doc__,
        **kwargs,
    )
    if command_options(name):
        add_config_flags(parser, name)
    parser.set_defaults(func=func)
    return parser
