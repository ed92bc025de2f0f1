"""Errors a user can act on: bad data, a bad option, a run directory in the wrong state.

The ``blockident`` command prints a :class:`UserError` as one message on stderr and exits with
2; ``BLOCKIDENT_DEBUG=1`` shows the full traceback instead. Other exceptions are bugs and keep
their traceback.
"""

from __future__ import annotations

import logging
import os
import sys


class UserError(Exception):
    """Something the user can fix; the message says what and where."""


class DataError(UserError, ValueError):
    """Input data that is malformed or cannot support the run (no pairs, empty splits)."""


class ConfigError(UserError, ValueError):
    """A config value or command-line option that cannot work."""


class MissingError(UserError, FileNotFoundError):
    """A file or folder the command needs does not exist."""


class ExistsError(UserError, FileExistsError):
    """A command would overwrite files it did not write."""


class DependencyError(UserError, ImportError):
    """An optional dependency that the chosen option needs is not installed."""


def debug() -> bool:
    """Whether ``BLOCKIDENT_DEBUG=1``: errors show their traceback."""
    return os.environ.get("BLOCKIDENT_DEBUG", "") not in ("", "0")


def user_message(error: BaseException) -> str | None:
    """The message of an error the user can act on, ``None`` for anything else (a bug).

    Hydra wraps errors raised while it instantiates a config in ``InstantiationException``;
    the cause is what the user needs to see.
    """
    from hydra.errors import CompactHydraException, InstantiationException
    from omegaconf.errors import MissingMandatoryValue

    if isinstance(error, UserError):
        return str(error)
    if isinstance(error, MissingMandatoryValue):
        return f"{error.full_key} has no value: pass {error.full_key}=..."
    if isinstance(error, InstantiationException) and error.__cause__ is not None:
        return user_message(error.__cause__)
    if isinstance(error, CompactHydraException):
        cause = f"\n{error.__cause__}" if error.__cause__ is not None else ""
        return f"{error}{cause}"
    return None


_warnings = logging.getLogger("blockident.warnings")  # a run's log file has them too
_warnings.addHandler(logging.NullHandler())
_warnings.propagate = False


def warn(message: str) -> None:
    """A warning the user should see: one line on stderr (and in a run's log)."""
    print(f"warning: {message}", file=sys.stderr)
    _warnings.warning(message)
