"""A ledger another process holds locked, and the repair that merges what runs kept: shared by
the tests of tuning loops whose ledger is locked or hangs (``tests/tuning/*hung_ledger*``)."""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import wattwise
from wattwise.testing import FakeMeter


@contextlib.contextmanager
def locked_ledger(ledger: Path) -> Iterator[sqlite3.Connection]:
    """The ledger at ``ledger`` with one run (``before``), then held under ``BEGIN
    EXCLUSIVE`` by another connection for the block: every write waits its busy timeout, then
    fails. Yields the holder (to check nothing was written while it held); released after."""
    with wattwise.track("before", store=str(ledger), meters=[FakeMeter({"cpu:0": 20.0})]):
        pass  # the ledger exists, with a run, before the lock
    holder = sqlite3.connect(ledger, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        yield holder
        if holder.in_transaction:
            holder.execute("ROLLBACK")
    finally:
        holder.close()


def runs_in(holder: sqlite3.Connection) -> int:
    """How many runs the ledger holds, read through the holder of its lock."""
    return int(holder.execute("SELECT count(*) FROM runs").fetchone()[0])


def repair(project: Path) -> None:
    """``wattwise doctor --repair`` in ``project``: merges the spools runs kept."""
    repaired = subprocess.run([sys.executable, "-m", "wattwise", "doctor", "--repair"],
                              cwd=project, capture_output=True, text=True, timeout=300,
                              check=False)  # fmt: skip
    assert repaired.returncode == 0, repaired.stderr
