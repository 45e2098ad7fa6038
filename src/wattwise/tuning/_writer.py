"""The study driver's own use of the ledger: on one thread, every wait bounded.

The study run and every trial run write through their run's writer thread and spool, like
any run (``wattwise/tracking/_handoff.py``, ``docs/explanation/safety.md``): a ledger that
is locked or hangs holds none of them up, and what it cannot take now is kept and merged
later. What the driver itself asks of the ledger goes through :class:`StudyLedger`:

* when a study resumes, the runs of its earlier sessions (``take_over``);
* the run of a trial whose worker died (its figures, and its crash annotation);
* the end-of-study summary: the study's trial runs and their reports;
* closing a ledger ``tune()`` opened.

One daemon thread (``wattwise-study-ledger``) makes these calls, in order. The driver waits
for a call at most :data:`LEDGER_WAIT_S` while the ledger answers, and not at all once a
call has not come back in time (a ledger that hangs: ``open()`` of a dead mount never
returns), until that call does. A call that fails or is late raises :class:`StoreError`
(:class:`LedgerLateError`), and the driver goes on with what it holds in memory: the trials'
outcomes (value, reports, energy), as their own processes measured them. Writes (a dead
worker's crash annotation) stay queued and land when the ledger answers, while the
process lives.

A ledger ``tune()`` opens from a path or URL is opened lazily (nothing is read until a run
or the driver uses it), with a busy timeout of :data:`BUSY_TIMEOUT_S`, the one a run's own
ledger has after its first insert: a write waits that long for another process's lock,
then goes to the spool.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import sqlite3
import threading
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from wattwise.exceptions import StoreError, StoreWarning, WattwiseError, user_stacklevel
from wattwise.store import BaseRunStore, RunRecord, get_store
from wattwise.tuning._storage import CO2E_ATTR, ENERGY_ATTR, STUDY_RUNS_ATTR, Resumed

if TYPE_CHECKING:
    import optuna

T = TypeVar("T")

#: How long the driver waits for one call to the ledger while it answers, in seconds.
LEDGER_WAIT_S = 5.0
#: Busy timeout of a ledger ``tune()`` opens: the one a run's own ledger has after its
#: first insert (``wattwise.tracking``'s writes), in seconds.
BUSY_TIMEOUT_S = 2.0

#: What a store call raises when the ledger fails (as a run's writer classifies it).
STORE_FAULTS = (WattwiseError, sqlite3.Error, OSError)

Metric = tuple[int | None, str, float, float]


class LedgerLateError(StoreError):
    """The ledger did not answer the study driver within its wait."""


def open_ledger(store: BaseRunStore | str | None) -> tuple[BaseRunStore, bool]:
    """The study's ledger, and whether ``tune()`` opened it (and so closes it).

    A store object is used as given. A path or URL (None: ``WATTWISE_STORE`` or the
    project's) is opened lazily with a busy timeout of :data:`BUSY_TIMEOUT_S`: opening
    reads nothing, so a ledger that hangs or is locked costs nothing here.
    """
    if isinstance(store, BaseRunStore):
        return store, False
    return get_store(store, defer=True, busy_timeout_s=BUSY_TIMEOUT_S), True


@dataclasses.dataclass(eq=False)
class _Call(Generic[T]):
    fn: Callable[[BaseRunStore], T] | None  # None: close the thread (and an owned store)
    what: str
    done: threading.Event = dataclasses.field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None


class StudyLedger:
    """A study driver's own calls to the ledger, made in order on one daemon thread.

    The caller waits for a call at most ``wait_s`` while the ledger answers, and not at all
    once a call has not come back in time, until that call does; a late or failed call raises
    :class:`~wattwise.exceptions.StoreError` (:class:`LedgerLateError` when late) and the
    caller goes on with what it holds in memory. Writes queued with ``keep=True`` still land
    when the ledger answers again. Used by ``wattwise.tune()`` and ``wattwise.ray_tune``'s
    callback (``docs/explanation/safety.md``).

    Args:
        store: The ledger.
        owned: ``tune()`` opened it: :meth:`close` closes it.
        wait_s: The longest wait for one call while the ledger answers, in seconds.
        on_warning: Called with each warning's text instead of ``warnings.warn``.
        emit_warnings: Whether to warn at all (``StoreWarning``), when no ``on_warning``.
    """

    def __init__(
        self, store: BaseRunStore, *, owned: bool, wait_s: float = LEDGER_WAIT_S,
        on_warning: Callable[[str], None] | None = None, emit_warnings: bool = True,
    ) -> None:  # fmt: skip
        self.store = store
        self.owned = owned
        self.wait_s = wait_s
        self._on_warning = on_warning
        self._emit_warnings = emit_warnings
        self._cond = threading.Condition()
        self._queue: collections.deque[_Call[Any]] = collections.deque()
        #: The call that did not come back in time, while it has not (None: none is late).
        self._late: _Call[Any] | None = None
        self._busy: _Call[Any] | None = None  # the call the thread is making
        self._thread: threading.Thread | None = None
        self._closed = False
        #: Why the driver went without the ledger, in order (one line each).
        self.faults: list[str] = []
        self._warned: set[str] = set()

    # -- calls -------------------------------------------------------------------------

    def call(self, fn: Callable[[BaseRunStore], T], *, what: str, keep: bool = False) -> T:
        """``fn(store)`` on the ledger thread: its result, waited for at most ``wait_s``.

        Args:
            fn: What to do with the store.
            what: The call in words, for the warning ("read the study's runs").
            keep: Do it even when nobody waits for it any more (a write): queued behind a
                late call, or left to finish after the wait.

        Raises:
            StoreError: The ledger failed (``fn`` raised a store fault), or did not answer
                in time (:class:`LedgerLateError`; not waited for at all while an earlier call
                is late). Other exceptions of ``fn`` (bugs) are raised as they are.
        """
        with self._cond:
            late = self._late
            if late is not None and not keep:
                raise LedgerLateError(self._late_text(what, late))
            job: _Call[T] = _Call(fn, what)
            self._put(job)
        if late is not None or not job.done.wait(self.wait_s):
            with self._cond:
                if job.done.is_set():  # it came back just now after all
                    pass
                elif late is not None:
                    raise LedgerLateError(self._late_text(what, late))
                else:
                    if not keep:
                        with contextlib.suppress(ValueError):
                            self._queue.remove(job)  # still queued: not worth doing now
                    # the call that does not come back: this one, or the one it queued behind
                    self._late = self._late or self._busy or job
                    raise LedgerLateError(self._late_text(what, self._late))
        if job.error is not None:
            if isinstance(job.error, STORE_FAULTS):
                if isinstance(job.error, StoreError):
                    raise job.error
                msg = f"The ledger at {self.where} failed to {what}: {job.error}"
                raise StoreError(msg) from job.error
            raise job.error
        result: T = job.result
        return result

    def warn(self, kind: str, text: str) -> None:
        """Say ``text`` once per ``kind``: ``on_warning``, else a ``StoreWarning``."""
        if kind in self._warned:
            return
        self._warned.add(kind)
        self.faults.append(text)
        if self._on_warning is not None:
            self._on_warning(text)
        elif self._emit_warnings:
            warnings.warn(f"wattwise: {text}", StoreWarning, stacklevel=user_stacklevel())

    def close(self) -> None:
        """Close the store if owned, and end the thread: waited for at most ``wait_s``,
        and not at all while a call is late (the thread ends when that call returns)."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            late = self._late
            job: _Call[None] = _Call(None, "close")
            self._put(job)
        if late is None:
            job.done.wait(self.wait_s)

    # -- the thread --------------------------------------------------------------------

    def _put(self, job: _Call[Any]) -> None:
        """Queue ``job`` (the caller holds ``_cond``); start the thread on first use."""
        self._queue.append(job)
        self._cond.notify()
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="wattwise-study-ledger",
                                            daemon=True)  # fmt: skip
            self._thread.start()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue:
                    self._cond.wait()
                job = self._busy = self._queue.popleft()
            try:
                if job.fn is None:
                    if self.owned:
                        with contextlib.suppress(*STORE_FAULTS):
                            self.store.close()
                else:
                    job.result = job.fn(self.store)
            except BaseException as err:  # kept for the caller (who may have stopped waiting)
                job.error = err
            with self._cond:
                job.done.set()
                self._busy = None
                if self._late is job:
                    self._late = None  # the ledger answers again
                if job.fn is None:
                    return

    @property
    def where(self) -> str:
        """The ledger, as messages name it: its file, else its URL (without a password)."""
        return str(getattr(self.store, "path", None) or self.store.url)

    def _late_text(self, what: str, late: _Call[Any]) -> str:
        if late.what == what:
            return (
                f"The ledger at {self.where} did not answer within {self.wait_s:g} s when "
                f"asked to {what} (a hung disk or network mount, or a lock held elsewhere?)"
            )
        return (
            f"The ledger at {self.where} has not answered since it was asked to "
            f"{late.what} (more than {self.wait_s:g} s ago), so the study did not wait for "
            f"it to {what}"
        )


def study_runs(
    store: BaseRunStore, study_id: str, run_ids: Iterable[str]
) -> tuple[dict[str, RunRecord], dict[str, list[Metric]]]:
    """The study's trial runs in the ledger, by id, and the metric points of those of
    ``run_ids`` it holds (one call of :meth:`StudyLedger.call` for the summary)."""
    records = {r.id: r for r in store.list_runs(study_id=study_id)}
    points = {run_id: list(store.metrics(run_id)) for run_id in run_ids if run_id in records}
    return records, points


def read_for_summary(
    ledger: StudyLedger, study_id: str, outcomes: Mapping[int, Mapping[str, Any]]
) -> tuple[dict[str, RunRecord], dict[str, list[Metric]], str | None]:
    """The trial runs and their metric points for the study's summary, if the ledger gives
    them in time, and the summary's ``summary_source``: None when it holds every trial's
    run, else why some or all figures are the driver's own (said once as a warning too)."""
    run_ids = [str(o["run_id"]) for o in outcomes.values() if o.get("run_id")]
    what = "read the study's trial runs for its summary"
    try:
        records, points = ledger.call(
            lambda store: study_runs(store, study_id, run_ids), what=what
        )
    except StoreError as err:
        said = "as the driver holds them; their runs reach the ledger from the spool."
        ledger.warn("summary", f"{err}. The study's summary is made of the trials' figures {said}")
        return {}, {}, f"the driver's own: {err}"
    missing = [n for n, o in sorted(outcomes.items())
               if o.get("run_id") and str(o["run_id"]) not in records]  # fmt: skip
    if not missing:
        return records, points, None
    shown = ", ".join(str(n) for n in missing)
    source = (
        f"the driver's own for trial(s) {shown}: the ledger at {ledger.where} does not hold "
        "their runs (yet: a run the ledger did not take is kept in the spool until it does)"
    )
    return records, points, source


def resumed_without_ledger(study: optuna.Study) -> Resumed:
    """What earlier sessions of ``study`` left, from the Optuna study alone (the ledger did
    not answer): its trials and earlier study runs, and the energy and carbon Optuna holds
    for each trial (``wattwise_energy_j``). Trials left running are not judged (their
    sessions' runs cannot be read); earlier study runs' own cost is not counted."""
    state = Resumed()
    previous = study.user_attrs.get(STUDY_RUNS_ATTR)
    state.previous_study_run_ids = [str(x) for x in previous] if isinstance(previous, list) else []
    trials = study.get_trials(deepcopy=False)
    state.trials = len(trials)
    for frozen in trials:
        energy = frozen.user_attrs.get(ENERGY_ATTR)
        if isinstance(energy, (int, float)) and not isinstance(energy, bool):
            co2e = frozen.user_attrs.get(CO2E_ATTR)
            state.energy_j += float(energy)
            state.co2e_g += float(co2e) if isinstance(co2e, (int, float)) else 0.0
    return state
