"""Errors the suite raises on purpose, each with a message a user can act on.

Never raise these for bugs; they are for bad input and unavailable resources.
"""

from __future__ import annotations


class AiopsError(Exception):
    """Base class: the CLI prints the message (no traceback) and exits with `exit_code`."""

    exit_code = 1


class ConfigError(AiopsError):
    """A configuration file or option is wrong: names the file, the key and the problem."""

    exit_code = 2


class StoreError(AiopsError):
    """The DuckDB store could not do what was asked (bad SQL, lock timeout, corrupt file)."""

    exit_code = 1


class UsageError(AiopsError):
    """A command was given impossible arguments (a bad value, a missing id)."""

    exit_code = 2
