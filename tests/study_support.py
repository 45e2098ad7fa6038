"""Studies whose energy does not depend on the machine: a fake meter on a scripted clock, and
the study record as the ledger holds it.

The clock moves only when the test says a piece of work is done, so each piece costs exactly
``power_w`` × its seconds, whatever the load (no sleeps). Shared by the tuning, CLI and report
tests.
"""

from __future__ import annotations

from typing import Any

from wattwise.store import open_store
from wattwise.testing import FakeMeter
from wattwise.tuning import StudyRecord


class ScriptedClock:
    """A clock that reads ``t``; the test moves it (``clock.t += seconds``)."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        """Move the clock on by ``seconds`` (a piece of work done)."""
        self.t += seconds


def scripted_run_options(clock: ScriptedClock, power_w: float) -> dict[str, Any]:
    """Run options: one fake GPU drawing ``power_w`` on ``clock``, no warnings shown."""
    return {"meters": [FakeMeter({"gpu:0": power_w}, clock=clock)], "emit_warnings": False}


def study_record(study_id: str) -> StudyRecord:
    """The study record of ``study_id`` as the project's ledger holds it."""
    store = open_store()
    try:
        record = StudyRecord.from_record(store.get_run(study_id).record)
    finally:
        store.close()
    assert record is not None
    return record
