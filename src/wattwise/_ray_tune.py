"""The Ray Tune classes of :mod:`wattwise.ray_tune` (this module imports ``ray.tune``).

:class:`WattwiseCallback` and :class:`BudgetStopper` run in the Tune driver. They see what
the trials' workers add to each result (see :func:`wattwise.ray_tune.track_trainable`) and
read the ledger the workers write; they measure nothing themselves.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import logging
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from wattwise._ray_common import (
    CO2E_KEY,
    ENERGY_KEY,
    NODE_KEY,
    RUN_KEY,
    STUDY_KEY,
    ledger_url,
    study_id_for,
)
from wattwise.exceptions import InvalidParameterError, RunNotFoundError, StoreError
from wattwise.tuning import (
    Budget,
    LedgerLateError,
    RayPlacement,
    Spent,
    StudyRecord,
    TrialRecord,
    totals_by_node,
)

if TYPE_CHECKING:
    from wattwise.store import BaseRunStore, RunRecord
    from wattwise.tuning import StudyLedger

logger = logging.getLogger("wattwise")

# Imported by name so that type checkers of wattwise do not walk all of Ray Tune.
_tune: Any = importlib.import_module("ray.tune")


F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

#: What the callback does when the ledger does not answer (said once, after why).
_WITHOUT_LEDGER = (
    "The Ray Tune experiment goes on: wattwise's books keep each trial's figures of its last "
    "report, and the trials' and the study's runs reach the ledger from the spool "
    "(wattwise doctor --repair merges it)."
)


def _warn(text: str) -> None:
    logger.warning("wattwise: %s", text)


def _never_raises(hook: F) -> F:
    """A Ray Tune hook of wattwise's: a failure of its own is logged, never raised into Tune
    (the experiment goes on; its books may then be incomplete, and the log says why)."""

    @functools.wraps(hook)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            return hook(*args, **kwargs)
        except Exception:
            logger.warning("wattwise: %s failed; the experiment goes on", hook.__name__,
                           exc_info=True)  # fmt: skip
            return None

    return guarded  # type: ignore[return-value]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


@dataclasses.dataclass
class TrialEnergy:
    """One Ray Tune trial, as :class:`WattwiseCallback` has it. Units in the names.

    Attributes:
        trial_id: Ray Tune's trial id.
        run_id: The trial's run in the ledger (known from its first result), or None.
        node_id: The Ray node it ran on, or None.
        state: ``running``; then ``complete``, ``pruned`` (stopped by Ray Tune: a
            scheduler, a stopper or a stop condition) or ``fail``.
        energy_j: Energy so far, in joules (before PUE).
        co2e_g: Emissions so far, in gCO2e.
        reports: Results received with energy in them.
        source: Where the figures come from: ``none`` (no result yet), ``last report`` or
            ``ledger`` (the trial's finished run: its whole energy, after its last report
            too).
    """

    trial_id: str
    run_id: str | None = None
    node_id: str | None = None
    state: str = "running"
    energy_j: float = 0.0
    co2e_g: float = 0.0
    reports: int = 0
    source: str = "none"

    def to_dict(self) -> dict[str, Any]:
        """JSON shape."""
        return dataclasses.asdict(self)


class WattwiseCallback(_tune.Callback):  # type: ignore[misc]
    """Keeps the books of a Ray Tune experiment whose trainable is ``track_trainable``'s.

    Each trial's energy and carbon are followed from its results (measured in its worker,
    on its node); once it ends they are read from its run in the ledger (which also
    covers the time after its last report). When the experiment ends, a study run (kind
    ``study``, id :func:`~wattwise.ray_tune.study_id_for`) is written with a
    :class:`~wattwise.tuning.StudyRecord`: trials by state, what they spent, their run ids
    and the totals per node. The study run measures nothing itself (no meters): the
    driver's own cost is not counted.

    Args:
        store: The ledger the trials write to (default the project's, resolved here).
        study_name: Name of the study run (default: the experiment's name).
        record_study: Write the study run (default True).

    Raises:
        InvalidParameterError: ``store`` is a ``memory://`` ledger.
    """

    def __init__(
        self,
        *,
        store: BaseRunStore | str | None = None,
        study_name: str | None = None,
        record_study: bool = True,
    ) -> None:
        self.store_url = ledger_url(store, "wattwise.ray_tune.WattwiseCallback")
        self.study_name = study_name
        self.record_study = bool(record_study)
        #: Every trial seen, by Ray Tune trial id.
        self.trials: dict[str, TrialEnergy] = {}
        #: The study run's id, once the first trial has started.
        self.study_id: str | None = None
        #: The study record written when the experiment ended (None before).
        self.record: StudyRecord | None = None
        self._experiment: str | None = None
        self._ledger: StudyLedger | None = None
        self._t0 = time.monotonic()

    # -- Ray Tune's hooks ------------------------------------------------------------------

    def setup(
        self,
        stop: Any = None,
        num_samples: int | None = None,
        total_num_samples: int | None = None,
        **info: Any,
    ) -> None:
        self._t0 = time.monotonic()

    @_never_raises
    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._trial(trial)
        if self._experiment is None:
            self._experiment = str(getattr(trial, "experiment_dir_name", "") or "") or None
        if self.study_id is None and self._experiment is not None:
            job = _driver_job_id()
            if job is not None:
                self.study_id = study_id_for(job, self._experiment)

    @_never_raises
    def on_trial_result(
        self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any
    ) -> None:
        books = self._trial(trial)
        energy, co2e = _number(result.get(ENERGY_KEY)), _number(result.get(CO2E_KEY))
        if energy is None:
            return
        books.energy_j, books.co2e_g = energy, co2e or 0.0
        books.reports += 1
        books.source = "last report"
        run_id, node = result.get(RUN_KEY), result.get(NODE_KEY)
        books.run_id = run_id if isinstance(run_id, str) else books.run_id
        books.node_id = node if isinstance(node, str) else books.node_id
        study = result.get(STUDY_KEY)
        if isinstance(study, str) and study != self.study_id:
            self.study_id = study  # the workers' word for it (the same, unless Ray changed)

    @_never_raises
    def on_trial_complete(
        self, iteration: int, trials: list[Any], trial: Any, **info: Any
    ) -> None:
        self._ended(self._trial(trial), "complete")

    @_never_raises
    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._ended(self._trial(trial), "fail")

    @_never_raises
    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        self._reconcile()
        self.record = self._study_record()
        self._write_study(self.record)
        if self._ledger is not None:
            self._ledger.close()
            self._ledger = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_ledger"] = None  # a connection and its thread do not travel (Tune pickles it)
        return state

    def get_state(self) -> dict[str, Any] | None:
        return {"trials": {k: v.to_dict() for k, v in self.trials.items()},
                "study_id": self.study_id}  # fmt: skip

    def set_state(self, state: dict[str, Any]) -> None:
        self.trials = {
            str(k): TrialEnergy(**v) for k, v in (state.get("trials") or {}).items()
        }  # fmt: skip
        self.study_id = state.get("study_id")

    # -- the books ---------------------------------------------------------------------------

    def spent(self) -> Spent:
        """What the trials have cost so far (their last figures), and the time since setup."""
        return Spent(
            energy_j=sum(t.energy_j for t in self.trials.values()),
            co2e_g=sum(t.co2e_g for t in self.trials.values()),
            duration_s=time.monotonic() - self._t0,
        )

    def by_node(self) -> dict[str, dict[str, Any]]:
        """Trials, energy and carbon per Ray node (see :func:`wattwise.tuning.totals_by_node`)."""
        return totals_by_node((t.node_id, t.energy_j, t.co2e_g) for t in self.trials.values())

    def _trial(self, trial: Any) -> TrialEnergy:
        trial_id = str(getattr(trial, "trial_id", trial))
        return self.trials.setdefault(trial_id, TrialEnergy(trial_id))

    def _calls(self) -> StudyLedger:
        """The driver's calls to the ledger: on one thread, each wait bounded (opened lazily:
        opening reads nothing; see ``wattwise.tuning.StudyLedger``)."""
        if self._ledger is None:
            from wattwise.tuning import StudyLedger, open_ledger

            store, owned = open_ledger(self.store_url)
            self._ledger = StudyLedger(store, owned=owned, on_warning=_warn)
        return self._ledger

    def _read(
        self, fn: Callable[[BaseRunStore], T], what: str, *, say_failure: bool = True
    ) -> T | None:
        """``fn(store)``, if the ledger answers in time; else None (said once per kind of
        fault; a failure only if ``say_failure``). A run not (yet) in the ledger raises
        ``RunNotFoundError``."""
        calls = self._calls()
        try:
            return calls.call(fn, what=what)
        except RunNotFoundError:
            raise
        except StoreError as err:
            late = isinstance(err, LedgerLateError)
            if late or say_failure:
                calls.warn("late" if late else "failed", f"{err}. {_WITHOUT_LEDGER}")
            return None

    def _ended(self, books: TrialEnergy, state: str) -> None:
        books.state = state
        run_id = books.run_id
        if run_id is None:
            return
        try:
            record = self._read(lambda s: s.get_run(run_id), "read a finished trial's run")
        except RunNotFoundError:  # not (yet) there: its worker kept it in its spool
            logger.debug("wattwise: trial run %s not in the ledger", run_id)
            return
        if record is not None:
            self._take(books, record)

    def _take(self, books: TrialEnergy, record: RunRecord) -> None:
        """Use the trial's finished run: its energy (to its end), node and state."""
        from wattwise.store import RunStatus

        placement = RayPlacement.from_record(record.record)
        if placement is not None and placement.node_id:
            books.node_id = placement.node_id
        books.run_id = record.id
        if record.status is RunStatus.RUNNING:
            return  # not finished (its worker was stopped mid-report): keep the last report
        books.energy_j, books.co2e_g, books.source = record.energy_j, record.co2e_g, "ledger"
        trial = TrialRecord.from_record(record.record)
        if trial is not None:
            books.state = trial.state

    def _reconcile(self) -> None:
        """Find in the ledger the runs of trials that never reported (a crash, a stop)."""
        if self.study_id is None:
            return
        study_id = self.study_id
        runs = self._read(lambda s: s.list_runs(study_id=study_id), "read the study's trial runs")
        for record in runs or ():
            placement = RayPlacement.from_record(record.record)
            if placement is None or placement.trial_id not in self.trials:
                continue
            books = self.trials[placement.trial_id]
            if books.source != "ledger":
                self._take(books, record)

    def _write_study(self, record: StudyRecord) -> None:
        """Write the study run (once the experiment has ended: the books are complete)."""
        if not self.record_study or self.study_id is None:
            return
        from wattwise.tracking import Run

        try:
            study_id = self.study_id
            try:  # None: not read (no ledger yet, no trial wrote: the study run creates it)
                found = self._read(lambda s: s.get_run(study_id), "look for the study run",
                                   say_failure=False)  # fmt: skip
            except RunNotFoundError:
                found = None
            if found is not None:
                logger.warning(
                    "wattwise: study run %s is already in the ledger (the same experiment name "
                    "in the same Ray job); its trials are there, no second study run is "
                    "written.", self.study_id[:8],
                )  # fmt: skip
                return
            run = Run(
                self.study_name or self._experiment or "ray-tune", kind="study", meters=[],
                store=self.store_url, tags=["ray-tune"], emit_warnings=False,
                config={"executor": "ray_tune", "experiment": self._experiment},
            )  # fmt: skip
            run.id = self.study_id  # the id every trial's run already names
            run.start()
            run.annotate(StudyRecord.KEY, record.to_record())
            run.finish()
        except Exception:
            logger.warning("wattwise: could not write the study run", exc_info=True)

    def _study_record(self) -> StudyRecord:
        trials = list(self.trials.values())
        counts = {"complete": 0, "pruned": 0, "fail": 0}
        for t in trials:
            if t.state in counts:
                counts[t.state] += 1
        spent = self.spent()
        return StudyRecord(
            study_id=self.study_id,
            study_name=self.study_name or self._experiment,
            executor="ray_tune",
            n_trials={**counts, "total": len(trials),
                      "running": sum(1 for t in trials if t.state == "running")},
            spent={**spent.to_dict(), "trials_energy_j": spent.energy_j,
                   "trials_co2e_g": spent.co2e_g, "driver_energy_j": None,
                   "driver_co2e_g": None, "sources": sorted({t.source for t in trials})},
            trial_run_ids=[t.run_id for t in trials if t.run_id],
            nodes=self.by_node(),
        )  # fmt: skip


def _driver_job_id() -> str | None:
    try:
        job = importlib.import_module("ray").get_runtime_context().get_job_id()
    except Exception:
        return None
    return job if isinstance(job, str) and job else None


class BudgetStopper(_tune.Stopper):  # type: ignore[misc]
    """Stops a Ray Tune experiment once its trials have spent an energy or carbon budget.

    The spending is the sum, over trials, of the energy (and carbon) each last reported
    (:data:`~wattwise.ray_tune.ENERGY_KEY`, added by
    :func:`~wattwise.ray_tune.track_trainable`). Once a limit is reached (spent >= limit),
    every running trial is stopped at its next result and no new trial starts. Like the
    budgets of ``wattwise.tune``, the overshoot is at most one report interval of each
    running trial: report often.

    Args:
        budget_kwh: Energy budget in kWh.
        budget_co2e_g: Carbon budget in gCO2e.

    Raises:
        InvalidParameterError: Neither limit is given, or one is not a positive number.
    """

    def __init__(
        self, *, budget_kwh: float | None = None, budget_co2e_g: float | None = None
    ) -> None:
        owner = "wattwise.ray_tune.BudgetStopper"
        if budget_kwh is None and budget_co2e_g is None:
            msg = f"{owner} needs a limit: pass budget_kwh=, budget_co2e_g= or both."
            raise InvalidParameterError(msg)
        self.budget = Budget.from_args(
            budget_kwh=budget_kwh, budget_co2e_g=budget_co2e_g, timeout_s=None, n_trials=None,
            owner=owner,
        )  # fmt: skip
        #: The limit reached (``energy_budget`` | ``carbon_budget``), or None.
        self.exhausted: str | None = None
        self._trials: dict[str, tuple[float, float]] = {}
        self._warned = False

    @_never_raises
    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        energy, co2e = _number(result.get(ENERGY_KEY)), _number(result.get(CO2E_KEY))
        if energy is None:
            if not self._warned:
                self._warned = True
                logger.warning(
                    "wattwise: trial %s reported no %s; BudgetStopper counts only trials "
                    "whose trainable is wrapped by wattwise.ray_tune.track_trainable.",
                    trial_id, ENERGY_KEY,
                )  # fmt: skip
        else:
            before = self._trials.get(str(trial_id), (0.0, 0.0))
            self._trials[str(trial_id)] = (max(before[0], energy), max(before[1], co2e or 0.0))
        if self.exhausted is None:
            self.exhausted = self.budget.exhausted(self.spent())
        return self.exhausted is not None

    def stop_all(self) -> bool:
        return self.exhausted is not None

    def spent(self) -> Spent:
        """The trials' energy and carbon as last reported (duration not tracked: 0)."""
        return Spent(
            energy_j=sum(e for e, _ in self._trials.values()),
            co2e_g=sum(c for _, c in self._trials.values()),
        )
