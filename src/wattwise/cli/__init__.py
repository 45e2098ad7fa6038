"""The ``wattwise`` command. Only this package prints or exits."""

from __future__ import annotations

from wattwise.cli._main import main

__all__ = ["main"]
