"""Exceptions raised by wattwise.

The tree::

    WattwiseError
    ├── InvalidParameterError (also ValueError, TypeError)
    ├── ConfigError
    ├── MeterError
    │   ├── MeterUnavailableError
    │   └── MeterPermissionError
    ├── RegionError
    ├── StoreError
    │   ├── RunNotFoundError
    │   ├── StoreCorruptError
    │   └── SchemaVersionError
    ├── RunStateError
    ├── CommandNotStartedError
    ├── SearchError
    │   └── TrialStateError
    ├── CacheError
    │   └── CacheCorruptError
    └── ReproducibilityError

Warnings: ``WattwiseWarning`` → ``MeterFallbackWarning``, ``LocationWarning``,
``CacheWarning``, ``StoreWarning``.

Every message says what failed, what was expected and how to fix it, as one sentence
or two; the command line prints it on one line, with no traceback unless ``--debug``.
"""

from __future__ import annotations

import contextlib
import os
import sys


class WattwiseError(Exception):
    """Base class of every error wattwise raises on purpose."""


class InvalidParameterError(WattwiseError, ValueError, TypeError):
    """A parameter has a value outside its constraints."""


class ConfigError(WattwiseError):
    """A configuration file or environment variable is malformed."""


class MeterError(WattwiseError):
    """A meter could not be used."""


class MeterUnavailableError(MeterError):
    """A meter that was asked for explicitly is not available here."""


class MeterPermissionError(MeterError):
    """A meter exists but its counters cannot be read (permission denied)."""


class RegionError(WattwiseError):
    """A region or grid zone is unknown."""


class StoreError(WattwiseError):
    """The ledger cannot be opened, read or written."""


class RunNotFoundError(StoreError):
    """No run matches the given id or prefix."""


class StoreCorruptError(StoreError):
    """The ledger file is not a wattwise ledger or is damaged."""


class SchemaVersionError(StoreError):
    """The ledger was written by a newer wattwise."""


class RunStateError(WattwiseError):
    """A run was used in a state that does not allow it."""


class CommandNotStartedError(WattwiseError):
    """``wattwise run``'s command could not be started (not found, not executable).

    Attributes:
        exit_code: The shell's code for it: 127 not found, 126 found but not executable.
    """

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class SearchError(WattwiseError):
    """A tuning study cannot go on."""


class TrialStateError(SearchError):
    """A trial was used in a state that does not allow it."""


class CacheError(WattwiseError):
    """The artifact cache cannot be used."""


class CacheCorruptError(CacheError):
    """A cache entry failed verification."""


class ReproducibilityError(WattwiseError):
    """A run cannot be reproduced as recorded."""


class WattwiseWarning(UserWarning):
    """Base class of wattwise warnings."""


class MeterFallbackWarning(WattwiseWarning):
    """A meter stopped working during a run, and its components fell back.

    They are measured by the next best meter that works from then on (usually a model:
    estimated), or, for meters the user named or gave, not at all (their energy stops at
    what was measured). Raised once per meter per run, through the run's warning path (the
    job goes on); the same sentence is kept in the record (``meter_errors``, ``warnings``),
    and each component says who measured what from when (``info["fallback"]``). A meter
    missing at start is not warned about: the record's ``fallbacks`` says which meter was
    used instead and why (``wattwise doctor`` too).
    """


class LocationWarning(WattwiseWarning):
    """The location was guessed, or not known at all."""


def user_stacklevel() -> int:
    """The ``stacklevel`` that makes a warning point at the user's line, not wattwise's.

    Call it in the function that calls :func:`warnings.warn`: it counts the frames from
    there to the first one outside the ``wattwise`` package and :mod:`contextlib` (the
    ``with`` machinery between a user's ``with`` line and wattwise). Python 3.12's
    ``skip_file_prefixes`` does this too, but wattwise supports 3.11.
    """
    package = os.path.dirname(os.path.abspath(__file__)) + os.sep
    skipped = (package, os.path.abspath(contextlib.__file__))
    frame = sys._getframe(1)
    level = 1
    while frame.f_back is not None and os.path.abspath(frame.f_code.co_filename).startswith(
        skipped
    ):
        frame = frame.f_back
        level += 1
    return level


class CacheWarning(WattwiseWarning):
    """A cache entry was damaged and recomputed, or a result could not be cached."""


class StoreWarning(WattwiseWarning):
    """The ledger (or the meters, or the settings) failed and the run went on without it."""


__all__ = [
    "CacheCorruptError",
    "CacheError",
    "CacheWarning",
    "CommandNotStartedError",
    "ConfigError",
    "InvalidParameterError",
    "LocationWarning",
    "MeterError",
    "MeterFallbackWarning",
    "MeterPermissionError",
    "MeterUnavailableError",
    "RegionError",
    "ReproducibilityError",
    "RunNotFoundError",
    "RunStateError",
    "SchemaVersionError",
    "SearchError",
    "StoreCorruptError",
    "StoreError",
    "StoreWarning",
    "TrialStateError",
    "WattwiseError",
    "WattwiseWarning",
]
