"""Where datasets live by default: one data directory, shared by every dataset."""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "GANFRIENDS_DATA_DIR"


def default_data_dir() -> Path:
    """``$GANFRIENDS_DATA_DIR``, else ``$XDG_DATA_HOME/ganfriends``, else ``~/.local/share/...``."""
    explicit = os.environ.get(DATA_DIR_ENV)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return base / "ganfriends"


def resolve_data_dir(data_dir: str | os.PathLike[str] | None) -> Path:
    """The data directory to use: ``data_dir`` when given, else :func:`default_data_dir`."""
    return Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
