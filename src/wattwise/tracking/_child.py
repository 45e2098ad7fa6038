"""``wattwise.log()`` from a process started by ``wattwise run``: into that run, never hung.

The job's own process writes into its parent's run: metric points and record facts
(``use_data``, ``seed_everything``). A ledger that hangs (a dead network mount) must not
hang the job, so the writes go to a daemon thread (``wattwise-child-writer``):

* ``log()`` hands its points over and waits for them at most ``START_TIMEOUT_S`` (0.5 s)
  while the ledger answers (so a healthy ledger holds them when ``log()`` returns, as
  before); once a write has not come back in time it does not wait at all until one does;
* metrics waiting behind a write that hangs are merged into one write;
* at exit, what was handed over gets at most :func:`~wattwise.tracking._handoff.final_wait_s`
  (0.5 s once the ledger is known to hang); the metric points still pending then go to a
  spool file in the user's state folder (local disk), merged once the run is in the ledger.

When the ledger refuses a write (locked, read-only, full), the points go to this process's
spool as before. ``strict`` (``WATTWISE_STRICT=1``) writes synchronously and raises.
"""

from __future__ import annotations

import atexit
import collections
import dataclasses
import logging
import threading
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wattwise.exceptions import RunNotFoundError, StoreError, StoreWarning, WattwiseError
from wattwise.store import get_store
from wattwise.tracking._handoff import final_wait_s, spool_late
from wattwise.tracking._writer import (
    _STORE_FAULTS,
    CHILD_BACKOFF_S,
    START_TIMEOUT_S,
    Metric,
    _ledger_text,
    fault_kind,
)

if TYPE_CHECKING:
    from wattwise.store import Spool

logger = logging.getLogger("wattwise")


@dataclasses.dataclass(eq=False)
class _Job:
    points: list[Metric] = dataclasses.field(default_factory=list)
    fact: tuple[str, Any, bool] | None = None  # key, value, append
    done: threading.Event = dataclasses.field(default_factory=threading.Event)


class ChildLogger:
    """Writes into the run ``run_id`` of the ledger ``store_url`` from another process.

    Args:
        run_id: The parent run (``WATTWISE_RUN_ID``).
        store_url: Its ledger (``WATTWISE_STORE``; None: the project's default).
        strict: Write synchronously and let ledger failures raise.
    """

    def __init__(self, run_id: str, store_url: str | None, *, strict: bool) -> None:
        self.run_id = run_id
        self.strict = strict
        self.store = get_store(store_url, defer=True, busy_timeout_s=START_TIMEOUT_S)
        self._spool: Spool | None = None
        self._skip_until = 0.0  # after a failure, spool directly for a while
        self._warned: set[str] = set()
        self._lock = threading.Lock()
        self._last_error: BaseException | None = None
        self._cond = threading.Condition()
        self._jobs: collections.deque[_Job] = collections.deque()
        self._busy: list[_Job] = []
        self._stuck = False
        self._given_up = False
        self._thread: threading.Thread | None = None

    # -- what the job calls -------------------------------------------------------------

    def log(self, points: list[Metric]) -> None:
        """Write metric points; never raises because of the store, never hangs, unless strict."""
        if self.strict:
            with self._lock:
                self._write_metrics(points)
            return
        self._hand(_Job(points=list(points)))

    def annotate(self, key: str, value: Any, *, append: bool = False) -> None:
        """Set (or append to) a top-level field of the run's record; never hangs the job."""
        if self.strict:
            self.store.annotate_run(self.run_id, key, value, append=append)
            return
        self._hand(_Job(fact=(key, value, append)))

    def drain(self) -> None:
        """At exit: wait (bounded) for what was handed over; spool the points still pending."""
        with self._cond:
            if self._thread is None or self._given_up:
                return
            wait = START_TIMEOUT_S if self._stuck else final_wait_s()
            deadline = time.monotonic() + wait
            while self._jobs or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            pending = [*self._busy, *self._jobs]
            if not pending:
                return
            self._given_up = True
            self._jobs.clear()
        points = [p for job in pending for p in job.points]
        facts = sum(job.fact is not None for job in pending)
        self._spool_late(points, facts, wait)

    # -- the thread ---------------------------------------------------------------------

    def _hand(self, job: _Job) -> None:
        with self._cond:
            if self._given_up:
                return
            self._jobs.append(job)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="wattwise-child-writer",
                                                daemon=True)  # fmt: skip
                self._thread.start()
                atexit.register(self.drain)
            self._cond.notify_all()
            stuck = self._stuck
        if not stuck and not job.done.wait(START_TIMEOUT_S):
            with self._cond:
                self._stuck = not job.done.is_set()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._jobs:
                    self._cond.wait()
                if self._jobs[0].fact is not None:
                    batch = [self._jobs.popleft()]
                else:  # metrics queued behind a slow write: one write for all of them
                    batch = []
                    while self._jobs and self._jobs[0].fact is None:
                        batch.append(self._jobs.popleft())
                self._busy = batch
            try:
                with self._lock:
                    first = batch[0]
                    if first.fact is not None:
                        self._write_fact(*first.fact)
                    else:
                        self._write_metrics([p for job in batch for p in job.points])
            except Exception as err:  # never into the job: a bug here is only logged
                logger.warning("wattwise: could not write into run %s: %s", self.run_id[:8], err)
            with self._cond:
                self._busy = []
                self._stuck = False
                for job in batch:
                    job.done.set()
                self._cond.notify_all()
                if self._given_up:
                    return

    # -- the writes (on the thread, or the caller's in strict mode) -----------------------

    def _write_metrics(self, points: list[Metric]) -> None:
        err: BaseException | None = self._last_error
        tries = 0 if time.monotonic() < self._skip_until else (10 if self._spool is None else 1)
        for attempt in range(tries):
            try:
                self.store.flush_run(self.run_id, {}, metrics=points)
                return
            except RunNotFoundError as caught:
                err = caught  # the tracker may not have inserted the run yet
                time.sleep(0.05 * (attempt + 1))
            except _STORE_FAULTS as caught:
                err = caught
                self.store.reset()
                break
        assert err is not None
        if self.strict:
            raise err
        self._last_error = err
        self._skip_until = time.monotonic() + CHILD_BACKOFF_S
        if self._spool is None:
            from wattwise.store import Spool

            self._spool = Spool(self.store.path, self.run_id, None)
        entry = {"op": "metrics", "metrics": points}
        try:
            where: Path | None = self._spool.append(entry, reason=str(err))
        except StoreError as spool_err:
            where = None
            self._warn_once("spool", f"{spool_err} These metrics are lost.")
        self._warn_once(fault_kind(err), _ledger_text(self.store.path, err, where))

    def _write_fact(self, key: str, value: Any, append: bool) -> None:
        try:
            self.store.annotate_run(self.run_id, key, value, append=append)
        except WattwiseError as err:
            self.store.reset()
            logger.warning("wattwise: could not record %r in run %s: %s", key, self.run_id[:8],
                           err)  # fmt: skip

    def _spool_late(self, points: list[Metric], facts: int, wait_s: float) -> None:
        """The ledger did not take what the job handed over in time: spool the points."""
        what = f"{len(points)} metric point(s)" + (
            f" and {facts} record fact(s) (not spooled: lost)" if facts else "")  # fmt: skip
        reason = (
            f"writing {what} into run {self.run_id[:8]} to the ledger {self.store.path} did not "
            f"finish within {wait_s:g} s (a hung disk or network mount?)"
        )
        if not points:
            self._warn_once("hung", f"{reason[0].upper()}{reason[1:]}.")
            return
        spool_late(self.store.path, self.run_id, None, {"op": "metrics", "metrics": points},
                   reason=reason, warn=self._warn_once, kept="The metrics are",
                   lost="These metrics are lost.")  # fmt: skip

    def _warn_once(self, kind: str, text: str) -> None:
        if kind in self._warned:
            return
        self._warned.add(kind)
        warnings.warn(f"wattwise: {text}", StoreWarning, stacklevel=4)
