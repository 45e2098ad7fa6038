"""wattwise in your own Optuna loop: each trial a run, its energy in the trial, budgets.

For people who call ``study.optimize`` themselves (any sampler, pruner and storage)::

    import optuna
    import wattwise.optuna

    @wattwise.optuna.track_objective
    def objective(trial):
        lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
        for epoch in range(20):
            acc = train_one_epoch(lr)
            trial.report(acc, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return acc

    study = optuna.create_study(storage="sqlite:///study.db", direction="maximize")
    with wattwise.optuna.WattwiseCallback(budget_kwh=0.01) as callback:
        study.optimize(objective, n_trials=50, callbacks=[callback])

* :func:`track_objective` (a decorator) or :func:`trial_run` (a context manager inside the
  objective) make each trial a run of kind ``trial`` in a study run (kind ``study``). The
  trial's true state is kept: ``optuna.TrialPruned`` gives a pruned trial (its run
  ``finished``, its record ``state: "pruned"``), an exception a failed one (run ``failed``),
  a return a complete one. The objective's exception passes through unchanged, and the
  objective gets Optuna's own trial, untouched.
* The energy (J), carbon (gCO2e) and their uncertainty bands land in the trial's user
  attributes (:data:`ENERGY_ATTR`, ...), so any storage keeps them and optuna-dashboard
  shows them.
* :class:`WattwiseCallback` checks energy and carbon budgets after each trial and calls
  ``study.stop()`` once one is reached; leaving its ``with`` block (or :func:`end_study`)
  writes the study's summary and ends its study run.

One study run per session: a process's first tracked trial of a ``Study`` object starts
it; a later process (or ``optuna.load_study`` again) makes a new one. The Optuna study's
user attribute :data:`STUDY_RUNS_ATTR` lists every session's study run, and each study
run's record names the ones before it. See ``docs/how-to/optuna.md``.

Optuna is imported only when a trial runs: ``import wattwise.optuna`` stays light.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import logging
import math
import threading
import warnings
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from wattwise.exceptions import InvalidParameterError, WattwiseWarning
from wattwise.tuning import (
    CO2E_ATTR,
    CO2E_BAND_ATTR,
    ENERGY_ATTR,
    ENERGY_BAND_ATTR,
    RUN_ATTR,
    STUDY_RUN_ATTR,
    STUDY_RUNS_ATTR,
    Budget,
    Spent,
    StudyRecord,
    TrialRecord,
    pareto_front,
    storage_label,
)

if TYPE_CHECKING:
    import optuna

    from wattwise.tracking import Run
    from wattwise.tuning import StudyRun

__all__ = [
    "CO2E_ATTR",
    "CO2E_BAND_ATTR",
    "ENERGY_ATTR",
    "ENERGY_BAND_ATTR",
    "RUN_ATTR",
    "STUDY_RUNS_ATTR",
    "STUDY_RUN_ATTR",
    "WattwiseCallback",
    "end_study",
    "study_run",
    "track_objective",
    "trial_run",
]

logger = logging.getLogger("wattwise")


def _warn(text: str) -> None:
    """A fault of wattwise's that the job goes on without: a warning, never an error."""
    warnings.warn(f"wattwise: {text}", WattwiseWarning, stacklevel=4)


#: Options of the runs (as for ``wattwise.track``).
RUN_OPTIONS = frozenset(
    {"store", "tags", "region", "meters", "interval_s", "flush_s", "pue", "emit_warnings",
     "on_warning"}
)  # fmt: skip

F = TypeVar("F", bound=Callable[..., Any])


def _check_options(options: dict[str, Any], owner: str) -> dict[str, Any]:
    unknown = sorted(set(options) - RUN_OPTIONS)
    if unknown:
        msg = (
            f"{owner} got unknown options {unknown}; it accepts {sorted(RUN_OPTIONS)} "
            "(those of wattwise.track). Remove or rename them."
        )
        raise InvalidParameterError(msg)
    meters = options.get("meters")
    if meters is not None and isinstance(meters, (str, bytes)):
        msg = f"The 'meters' option of {owner} must be a list of meter ids. Got {meters!r}."
        raise InvalidParameterError(msg)
    return options


class _Session:
    """This process's study run for one Optuna ``Study`` object, and its trials."""

    def __init__(self, study: optuna.Study, options: dict[str, Any]) -> None:
        self.study = weakref.ref(study)
        self.study_name = study.study_name
        self.storage = storage_label(study)
        self.options = dict(options)
        self.lock = threading.RLock()
        self.run: StudyRun | None = None
        self.previous: list[str] = []
        self.active = 0
        self.trials: list[dict[str, Any]] = []
        self.budget: Budget | None = None
        self.stop_reason: str | None = None
        self.ended = False
        self.record: StudyRecord | None = None

    def start(self, study: optuna.Study) -> StudyRun:
        """The study run, started on first use; linked to earlier sessions of the study."""
        with self.lock:
            if self.run is not None:
                return self.run
            from wattwise.tuning import StudyRun

            previous = study.user_attrs.get(STUDY_RUNS_ATTR)
            self.previous = [str(x) for x in previous] if isinstance(previous, list) else []
            options = {k: v for k, v in self.options.items() if k != "tags"}
            run = StudyRun(
                self.study_name, config={
                    "optuna_study": self.study_name, "storage": self.storage,
                    "direction": _direction(study), "sampler": type(study.sampler).__name__,
                    "pruner": type(study.pruner).__name__, "session": len(self.previous) + 1,
                },
                tags=list(self.options.get("tags") or ()), **options,
            )  # fmt: skip
            run.start()
            self.run = run
            study.set_user_attr(STUDY_RUNS_ATTR, [*self.previous, run.id])
            atexit.register(self.end, "the process exited")
            return run

    def trial_started(self) -> None:
        with self.lock:
            self.active += 1
            if self.active == 1 and self.run is not None:
                self.run.tree.inline_trial_started()

    def trial_ended(self, outcome: dict[str, Any]) -> None:
        with self.lock:
            self.active -= 1
            if self.active == 0 and self.run is not None:
                self.run.tree.inline_trial_ended()
            self.trials.append(outcome)

    def own_cost(self) -> dict[str, float]:
        with self.lock:
            if self.run is None or self.ended:
                return {"energy_j": 0.0, "co2e_g": 0.0}
            return self.run.snapshot()

    def end(self, why: str | None = None) -> StudyRecord | None:
        """Write the summary into the study run and finish it (once)."""
        with self.lock:
            if self.ended or self.run is None:
                return self.record
            self.ended = True
            atexit.unregister(self.end)
            run = self.run
            try:
                record = self._summary(run)
                run.annotate(StudyRecord.KEY, record.to_record())
                self.record = record
            finally:
                from wattwise.tracking import RunState

                if run.state is RunState.RUNNING:
                    run.finish("finished")
            if why is not None:
                logger.debug("wattwise: study run %s ended: %s", run.id[:8], why)
            return self.record

    def _summary(self, run: StudyRun) -> StudyRecord:
        study = self.study()
        direction = _direction(study) if study is not None else None
        own = run.snapshot()
        trials = list(self.trials)
        counts = {"complete": 0, "pruned": 0, "fail": 0}
        for t in trials:
            counts[t["state"]] = counts.get(t["state"], 0) + 1
        trials_j = sum(t["energy_j"] for t in trials)
        trials_g = sum(t["co2e_g"] for t in trials)
        spent = Spent(energy_j=trials_j + own["energy_j"], co2e_g=trials_g + own["co2e_g"],
                      duration_s=own.get("duration_s", 0.0))  # fmt: skip
        sign = -1.0 if direction == "minimize" else 1.0
        scored = [t for t in trials if t["value"] is not None and math.isfinite(t["value"])]
        complete = [t for t in scored if t["state"] == "complete"]
        best = max(complete, key=lambda t: (sign * t["value"], -t["energy_j"]), default=None)
        front = pareto_front(
            complete, value=lambda t: float(t["value"]), energy_j=lambda t: t["energy_j"],
            direction=direction or "maximize",
        )  # fmt: skip
        budget = self.budget or Budget()
        return StudyRecord(
            study_id=run.id, study_name=self.study_name, direction=direction,
            executor="optuna", sampler=run.params.get("sampler"),
            pruner=run.params.get("pruner"),
            n_trials={**counts, "total": len(trials), "pruned_by_budget": 0},
            budget=budget.to_dict(),
            spent={**spent.to_dict(), "trials_energy_j": trials_j, "trials_co2e_g": trials_g,
                   "driver_energy_j": own["energy_j"], "driver_co2e_g": own["co2e_g"]},
            stop_reason=self.stop_reason or "ended",
            best=None if best is None else {
                "number": best["number"], "run_id": best["run_id"], "value": best["value"],
                "params": best["params"], "energy_j": best["energy_j"],
                "co2e_g": best["co2e_g"],
            },
            best_run_id=None if best is None else best["run_id"],
            pareto_run_ids=[t["run_id"] for t in front],
            pareto=[{"number": t["number"], "run_id": t["run_id"], "state": t["state"],
                     "value": t["value"], "energy_j": t["energy_j"]} for t in front],
            avoided_method=(
                "not estimated: in your own Optuna loop the reports go to Optuna directly, "
                "so wattwise has no energy per step"
            ),
            trial_run_ids=[t["run_id"] for t in trials],
            other={"optuna": {"study_name": self.study_name, "storage": self.storage,
                              "session": len(self.previous) + 1,
                              "previous_study_run_ids": list(self.previous)}},
        )  # fmt: skip


# Sessions by Study object (weakly: a study that is gone ends nothing by itself).
_sessions: weakref.WeakKeyDictionary[Any, _Session] = weakref.WeakKeyDictionary()
_sessions_lock = threading.Lock()


def _session(study: optuna.Study, options: dict[str, Any] | None) -> _Session:
    with _sessions_lock:
        session = _sessions.get(study)
        if session is None or session.ended:
            session = _Session(study, options or {})
            _sessions[study] = session
        return session


def _direction(study: optuna.Study) -> str | None:
    try:
        return "maximize" if study.direction.name == "MAXIMIZE" else "minimize"
    except RuntimeError:  # multi-objective: the first direction
        first = study.directions[0]
        return "maximize" if first.name == "MAXIMIZE" else "minimize"


def study_run(study: optuna.Study) -> StudyRun | None:
    """This process's study run for ``study`` (None before its first tracked trial)."""
    with _sessions_lock:
        session = _sessions.get(study)
    return None if session is None else session.run


def end_study(study: optuna.Study) -> StudyRecord | None:
    """Write ``study``'s summary into this session's study run and finish that run.

    The next tracked trial of ``study`` starts a new session (a new study run). Runs still
    open at exit are ended this way too.

    Returns:
        The study record written, or None when no trial of ``study`` was tracked here.
    """
    with _sessions_lock:
        session = _sessions.get(study)
    return None if session is None else session.end()


def _as_value(raw: Any) -> tuple[float | None, list[float] | None]:
    """The objective's value (single) or values (multi-objective), when valid for Optuna."""
    if isinstance(raw, Sequence) and not isinstance(raw, (str, bytes)):
        try:
            values = [float(v) for v in raw]
        except (TypeError, ValueError):
            return None, None
        return None, values if values and all(math.isfinite(v) for v in values) else None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None, None
    return (value, None) if math.isfinite(value) else (None, None)


@contextlib.contextmanager
def trial_run(trial: optuna.Trial, **options: Any) -> Iterator[Run | None]:
    """Make the enclosing part of an objective a run of kind ``trial``.

    Use inside the objective, around its work::

        def objective(trial):
            with wattwise.optuna.trial_run(trial) as run:
                ...
                return value

    The run is in this session's study run of ``trial.study`` (started by the first
    tracked trial). Leaving the block by ``optuna.TrialPruned`` records the trial as
    pruned (run ``finished``), by another exception as failed (run ``failed``); the
    exception goes on unchanged. Then the trial's user attributes get the energy, carbon
    and bands (:data:`ENERGY_ATTR`, ...). A value returned inside the block is not seen
    here: use :func:`track_objective` to record it, or ``run.log(objective=value)``.

    Args:
        trial: Optuna's trial, as the objective received it.
        **options: Options of the run (``store``, ``tags``, ``region``, ``meters``,
            ``interval_s``, ``flush_s``, ``pue``, ``emit_warnings``, ``on_warning``).
            The first tracked trial's options are also the study run's.

    Yields:
        The trial's :class:`wattwise.Run`, or None when wattwise could not start it (the
        objective then runs untracked, with a warning: never harm the job).
    """
    _check_options(options, "wattwise.optuna.trial_run")
    box: dict[str, Any] = {}
    with _tracked(trial, options, box) as run:
        yield run


@contextlib.contextmanager
def _tracked(
    trial: optuna.Trial, options: dict[str, Any], box: dict[str, Any]
) -> Iterator[Run | None]:
    import optuna

    from wattwise.exceptions import SearchError

    session: _Session | None = None
    run: Run | None = None
    try:
        from wattwise.tracking import Run

        session = _session(trial.study, options)
        study_run = session.start(trial.study)
        run = Run(
            f"{session.study_name}#{trial.number}", kind="trial", study_id=study_run.id,
            config=dict(trial.params), tags=list(options.get("tags") or ()),
            **{k: v for k, v in options.items() if k != "tags"},
        )  # fmt: skip
        run.__enter__()  # started, and the active run of the objective (wattwise.log, ...)
        session.trial_started()
    except Exception as err:  # wattwise failed: the trial runs untracked
        _warn(f"trial {trial.number} is not tracked: {err}")
        session = run = None
    if run is None or session is None:
        yield None
        return
    try:
        trial.set_user_attr(RUN_ATTR, run.id)
        trial.set_user_attr(STUDY_RUN_ATTR, study_run.id)
    except Exception as err:  # the storage refused: the run still records the trial
        _warn(f"trial {trial.number}'s run id not stored in Optuna: {err}")
    try:
        yield run
    except optuna.TrialPruned:
        _end(session, trial, run, "pruned", None, None, box)
        raise
    except BaseException as err:
        _end(session, trial, run, "fail", None, f"{type(err).__name__}: {err}"[:500], box, err)
        raise
    else:
        if "raw" in box:
            value, values = _as_value(box["raw"])
            if value is None and values is None:
                text = (
                    f"The objective returned {box['raw']!r}; Optuna fails a trial whose "
                    "value is not a finite number."
                )[:500]
                _end(session, trial, run, "fail", None, text, box, SearchError(text))
            else:
                box["values"] = values
                _end(session, trial, run, "complete", value, None, box)
        else:
            _end(session, trial, run, "complete", None, None, box)


def _end(
    session: _Session,
    trial: optuna.Trial,
    run: Run,
    state: str,
    value: float | None,
    error: str | None,
    box: dict[str, Any],
    exc: BaseException | None = None,
) -> None:
    """Finish the trial's run with its state, then put its figures in the trial.

    A failed trial's run ends as a ``with`` block ends on ``exc`` (status ``failed``,
    the error in the record); a complete or pruned one as a block that ran through.
    """
    try:
        params = dict(trial.params)
        run.set_params(**params)
        if value is not None:
            run.log(objective=value)
        other = {"values": box["values"]} if box.get("values") else {}
        record = TrialRecord(
            number=trial.number, state=state, value=value,
            stopped_by="pruner" if state == "pruned" else None, error=error, params=params,
            user_attrs={k: v for k, v in trial.user_attrs.items()
                        if not k.startswith("wattwise_")},
            other=other,
        )  # fmt: skip
        run.annotate(TrialRecord.KEY, record.to_record())
        if exc is not None:
            run.__exit__(type(exc), exc, exc.__traceback__)
        else:
            run.__exit__(None, None, None)
        result = run.result
    except Exception as err:  # the ledger or a meter failed: the trial goes on as it was
        _warn(f"trial {trial.number}'s run could not be finished: {err}")
        session.trial_ended({
            "number": trial.number, "run_id": run.id, "state": state, "value": value,
            "params": dict(trial.params), "energy_j": 0.0, "co2e_g": 0.0,
        })  # fmt: skip
        return
    session.trial_ended({
        "number": trial.number, "run_id": run.id, "state": state, "value": value,
        "params": params, "energy_j": result.energy_j, "co2e_g": result.co2e_g,
    })  # fmt: skip
    try:
        trial.set_user_attr(ENERGY_ATTR, result.energy_j)
        trial.set_user_attr(ENERGY_BAND_ATTR, result.energy_band_j)
        trial.set_user_attr(CO2E_ATTR, result.co2e_g)
        trial.set_user_attr(CO2E_BAND_ATTR, result.co2e_band_g)
    except Exception as err:  # the storage refused: the figures stay in the ledger
        _warn(f"trial {trial.number}'s energy not stored in Optuna: {err}")


def track_objective(objective: F | None = None, /, **options: Any) -> Any:
    """Decorate an Optuna objective so that each trial is a wattwise run.

    ``@wattwise.optuna.track_objective`` or ``@wattwise.optuna.track_objective(store=...,
    region="FR")``. The objective receives Optuna's trial unchanged and its return value
    or exception passes through unchanged; see :func:`trial_run` for what is recorded.
    The returned value is also recorded (metric ``objective``, the record's ``value``).

    Args:
        objective: ``objective(trial)``.
        **options: Options of the runs, as for :func:`trial_run`.
    """
    _check_options(options, "wattwise.optuna.track_objective")

    def decorate(fn: F) -> F:
        checked: object = fn  # checked at run time, whatever the hints
        if not callable(checked):
            msg = (
                "wattwise.optuna.track_objective decorates a callable objective(trial). "
                f"Got {fn!r} instead."
            )
            raise InvalidParameterError(msg)

        @functools.wraps(fn)
        def wrapper(trial: Any, *args: Any, **kwargs: Any) -> Any:
            if not hasattr(trial, "study") or not hasattr(trial, "set_user_attr"):
                return fn(trial, *args, **kwargs)  # not an Optuna trial: nothing to track
            box: dict[str, Any] = {}
            with _tracked(trial, options, box):
                raw = fn(trial, *args, **kwargs)
                box["raw"] = raw
            return raw

        return wrapper  # type: ignore[return-value]

    return decorate if objective is None else decorate(objective)


class WattwiseCallback:
    """An Optuna callback: energy and carbon budgets that stop the study.

    Pass it to ``study.optimize(..., callbacks=[callback])`` with an objective wrapped by
    :func:`track_objective` (or using :func:`trial_run`). After each trial it adds up what
    the study has spent: every trial of the study with a :data:`ENERGY_ATTR` user
    attribute (whichever process or earlier session ran it) plus this session's study run;
    once a budget is reached it calls ``study.stop()``: running trials end as they would,
    no new one starts. The overshoot is at most the trials running at that moment.

    As a context manager, leaving the block ends the study runs it saw (:func:`end_study`).

    Args:
        budget_j: Energy budget in joules.
        budget_kwh: Energy budget in kWh (give it or ``budget_j``, not both).
        budget_co2e_g: Carbon budget in gCO2e.

    Raises:
        InvalidParameterError: A budget is not a positive number, or energy is given twice.
    """

    def __init__(
        self,
        *,
        budget_j: float | None = None,
        budget_kwh: float | None = None,
        budget_co2e_g: float | None = None,
    ) -> None:
        owner = "wattwise.optuna.WattwiseCallback"
        if budget_j is not None and budget_kwh is not None:
            msg = (
                f"{owner} takes one energy budget: budget_j={budget_j!r} or "
                f"budget_kwh={budget_kwh!r}, not both. Keep one."
            )
            raise InvalidParameterError(msg)
        from wattwise._config import check_positive

        joules = None if budget_j is None else check_positive("budget_j", budget_j, owner)
        budget = Budget()
        if budget_kwh is not None or budget_co2e_g is not None:
            budget = Budget.from_args(
                budget_kwh=budget_kwh, budget_co2e_g=budget_co2e_g, timeout_s=None,
                n_trials=None, owner=owner,
            )  # fmt: skip
        #: The limits (``energy_j`` in joules, ``co2e_g``); none: it only adds up.
        self.budget = Budget(
            energy_j=joules if joules is not None else budget.energy_j, co2e_g=budget.co2e_g
        )
        self.stop_reason: str | None = None
        self.spent = Spent()
        self._studies: list[weakref.ref[Any]] = []
        self._warned = False

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        """Called by Optuna after each trial: add up, and stop the study at a budget."""
        session = self._attach(study)
        spent = self.study_spent(study, session)
        self.spent = spent
        if self.stop_reason is None:
            reason = self.budget.exhausted(spent)
            if reason is not None:
                self.stop_reason = reason
                if session is not None:
                    session.stop_reason = reason
                study.stop()

    def _attach(self, study: optuna.Study) -> _Session | None:
        with _sessions_lock:
            session = _sessions.get(study)
        if not any(ref() is study for ref in self._studies):
            self._studies.append(weakref.ref(study))
        if session is not None and session.budget is None:
            session.budget = self.budget
        return session

    def study_spent(self, study: optuna.Study, session: _Session | None = None) -> Spent:
        """What ``study`` has cost: its tracked trials (from the storage) and this session's
        study run."""
        import optuna

        energy = co2e = 0.0
        untracked = 0
        states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED,
                  optuna.trial.TrialState.FAIL)  # fmt: skip
        for frozen in study.get_trials(deepcopy=False, states=states):
            attrs = frozen.user_attrs
            if isinstance(attrs.get(ENERGY_ATTR), (int, float)):
                energy += float(attrs[ENERGY_ATTR])
                co2e += float(attrs.get(CO2E_ATTR) or 0.0)
            else:
                untracked += 1
        if untracked and not self._warned:
            self._warned = True
            _warn(
                f"{untracked} trial(s) of study {study.study_name!r} have no energy figure; "
                "wrap the objective with wattwise.optuna.track_objective so that budgets "
                "count them"
            )
        if session is not None:
            own = session.own_cost()
            energy += own.get("energy_j", 0.0)
            co2e += own.get("co2e_g", 0.0)
        return Spent(energy_j=energy, co2e_g=co2e)

    def close(self) -> list[StudyRecord]:
        """End this process's study runs of the studies this callback saw."""
        records = []
        for ref in self._studies:
            study = ref()
            if study is not None:
                record = end_study(study)
                if record is not None:
                    records.append(record)
        return records

    def __enter__(self) -> WattwiseCallback:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
