"""The exception tree. Every error a user can cause is a ``GanError``, printed as one line.

Each class's docstring is its default message, so a subclass is just a name and a sentence
(the procrastinate pattern).
"""

from __future__ import annotations


class GanError(Exception):
    """Something went wrong in ganfriends."""

    exit_status = 1  # what the CLI exits with after printing the message

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class ConfigError(GanError):
    """The configuration is invalid."""


class DatasetError(GanError):
    """The dataset cannot be loaded."""


class CheckpointError(GanError):
    """The checkpoint cannot be read."""
