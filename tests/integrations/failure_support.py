"""What the failure tests of the Keras and Hugging Face Trainer callbacks share: the user's
code raising once where the test says, where the exception was raised, and the run that
must have ended failed at once (the process lives on, as in a notebook)."""

from __future__ import annotations

import wattwise
from wattwise.store import RunRecord, RunStatus, open_store


class Failing:
    """The user's own code (data, a layer, the loss, metrics, a callback) raising once, at
    its n-th call (then disarmed by the test)."""

    def __init__(self, at: int, where: str) -> None:
        self.at = at
        self.where = where
        self.calls = 0
        self.armed = True
        self.raised: list[BaseException] = []

    @property
    def message(self) -> str:
        """What the exception says."""
        return f"{self.where} blew up at call {self.at}"

    def maybe_raise(self) -> None:
        self.calls += 1
        if self.armed and self.calls == self.at:
            err = FloatingPointError(self.message)
            self.raised.append(err)
            raise err


def innermost(err: BaseException) -> str:
    """The function the exception was raised in (its traceback's last frame)."""
    tb = err.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    assert tb is not None
    return tb.tb_frame.f_code.co_name


def ended_failed(name: str) -> RunRecord:
    """The ledger's one run, named ``name``: ended failed already, with its energy and its
    error, and no longer current."""
    (run,) = open_store().list_runs()
    assert run.name == name and run.status is RunStatus.FAILED
    assert run.energy_j > 0 and run.ended_at is not None
    assert run.record["error"].startswith("FloatingPointError: ")
    assert wattwise.tracking.current_run() is None
    return run
