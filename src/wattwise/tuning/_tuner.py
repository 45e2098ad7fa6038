"""``wattwise.tune()``: hyperparameter search on Optuna, bounded and accounted in joules.

Optuna samples and prunes (ask-and-tell; its samplers and pruners, untouched). wattwise
runs each trial as a run of the ledger, checks the budgets at every report, and sums up
what the study cost, what it found and what pruning avoided.

The driver (this process) owns the Optuna study, in memory. Trials run inline (in this
process, one at a time), in worker processes, or in Ray actors; wherever they run, each
one asks the driver for its parameters and pruning decisions (see ``_executors``).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from wattwise.exceptions import InvalidParameterError, SearchError, StoreError, TrialStateError
from wattwise.store import BaseRunStore, RunRecord, RunStatus
from wattwise.tuning._budget import (
    Budget,
    Spent,
    overshoot,
    start_would_overshoot,
    trial_would_overshoot,
)
from wattwise.tuning._executors import Died, Done, ObjectiveRef, Request, WorkerPool, make_pool
from wattwise.tuning._fidelity import pruner_settings
from wattwise.tuning._pareto import (
    estimate_avoided,
    pareto_front,
    planned_last_step,
    setup_energy_j,
)
from wattwise.tuning._progress import Progress, status_line
from wattwise.tuning._records import StudyRecord, TrialRecord
from wattwise.tuning._space import parse_space
from wattwise.tuning._storage import (
    CO2E_ATTR,
    CO2E_BAND_ATTR,
    ENERGY_ATTR,
    ENERGY_BAND_ATTR,
    RUN_ATTR,
    STUDY_RUN_ATTR,
    STUDY_RUNS_ATTR,
    Resumed,
    open_study,
    storage_label,
    take_over,
)
from wattwise.tuning._tree import StudyRun, StudyTree
from wattwise.tuning._trial import Trial, execute_trial, portable_error
from wattwise.tuning._writer import (
    LedgerLateError,
    StudyLedger,
    open_ledger,
    read_for_summary,
    resumed_without_ledger,
)

if TYPE_CHECKING:
    import optuna
    from optuna.pruners import BasePruner
    from optuna.samplers import BaseSampler

EXECUTORS = ("inline", "processes", "ray")
DIRECTIONS = ("minimize", "maximize")
#: Trial methods a worker may ask the driver's Optuna trial to run.
_FORWARDED = frozenset({"suggest_float", "suggest_int", "suggest_categorical", "set_user_attr"})
#: Run options that may be passed through to every trial's run.
RUN_OPTIONS = frozenset(
    {"region", "meters", "meter_instances", "interval_s", "flush_s", "pue", "emit_warnings",
     "on_warning"}
)  # fmt: skip


#: How long interrupted worker trials get to end their runs (then they are killed), in s.
STOP_WAIT_S = 15.0

#: Successive halving keeps 1 trial in ``DEFAULT_REDUCTION_FACTOR`` at each rung.
DEFAULT_REDUCTION_FACTOR = 2
#: With energy as the fidelity and no ``energy_step_j``, one pruner step is this fraction of
#: the energy of the study's first complete trial (one full training, measured):
#: ``step_j = energy_j / ENERGY_STEPS_PER_TRAINING``. It does not depend on how often a trial
#: reports. 32 steps: fine enough that the rungs land within 1/32 of a training of where
#: they are meant to, and a power of 2 so that ``DEFAULT_MIN_RESOURCE`` places them exactly.
ENERGY_STEPS_PER_TRAINING = 32
#: The default pruner's first rung, in pruner steps: 6/32 = 0.1875 of the first complete
#: trial's energy; with the reduction factor 2, rungs at 0.19, 0.375, 0.75 (and 1.5) of it.
#: ``benchmarks/tune`` chose a first rung at 5 report intervals of 27-epoch trainings, about
#: 0.19 of a training (``docs/explanation/tuning-benchmark.md``).
DEFAULT_MIN_RESOURCE = 6
#: Optuna study user attribute: the energy unit of the pruner's steps and how it was derived,
#: so that a resumed study (``storage=``, ``resume=True``) keeps it.
ENERGY_STEP_ATTR = "wattwise_energy_step"


def default_sampler(seed: int | None = None) -> BaseSampler:
    """The sampler ``tune()`` uses when none is given: Optuna's ``TPESampler(seed=seed)``,
    whose first 10 trials are random (``n_startup_trials``, Optuna's default).

    Chosen on ``benchmarks/tune`` (``docs/explanation/tuning-benchmark.md``). With 24
    trials, the default pruner's search with random configurations never came within the
    target (0.5 points, or 2 % of the loss) of the best value TPE found, in most workloads
    and seeds; with TPE's configurations it found that value or better in fewer joules. Up
    to 10 trials it is the same random search as before; the earlier choice of random
    configurations came from 12-trial searches where TPE after 5 random trials locked onto
    the first configuration that survived the first rung.
    """
    import optuna

    return optuna.samplers.TPESampler(seed=seed)


def default_pruner() -> BasePruner:
    """The pruner ``tune()`` uses when none is given: asynchronous successive halving.

    One bracket (every trial competes at every rung), ``min_resource=6``,
    ``reduction_factor=2``: rungs at 6, 12, 24... steps, half the trials kept at each.
    ``tune()`` pairs it with energy as the fidelity axis, where one step is 1/32 of the
    energy of the study's first complete trial (``ENERGY_STEPS_PER_TRAINING``): the rungs
    are at 0.19, 0.375 and 0.75 of that trial's measured energy, however often trials
    report (every epoch or every batch). Until a trial completes, reports are logged and
    kept; when the unit is known, the running trials' reports are given to the pruner at
    their energy steps (see ``docs/explanation/tuning.md``).

    Chosen on ``benchmarks/tune``: candidates scored on random search's recorded learning
    curves (``python -m benchmarks.tune.replay``), then measured. There the unit was the
    first trial's first report interval (one epoch of 27): a first rung at one step judged
    trials after about one epoch, since a trial's start-up already costs one or two steps,
    and stopped the slow starters that end best; five steps (about 0.19 of a training)
    with half kept reached random search's target in more (workload, seed) pairs than
    three steps or a factor of 3, and kept its best value
    (``docs/explanation/tuning-benchmark.md``). 6/32 = 0.1875 keeps that first rung at the
    same fraction of a training without tying it to the reporting frequency.
    """
    import optuna

    return optuna.pruners.SuccessiveHalvingPruner(
        min_resource=DEFAULT_MIN_RESOURCE, reduction_factor=DEFAULT_REDUCTION_FACTOR
    )


@dataclasses.dataclass(frozen=True)
class TrialSummary:
    """One trial as the ledger has it. Units in the names.

    Attributes:
        number: Optuna trial number.
        run_id: The trial's run in the ledger (None if it never started).
        state: ``complete`` | ``pruned`` | ``fail``.
        value: Final value (complete), last reported value (pruned), None (fail).
        params: Parameters.
        energy_j: Energy of the trial's run, in joules.
        co2e_g: Emissions of the trial's run, in gCO2e.
        duration_s: Wall time of the trial, in seconds.
        last_step: Step of its last report, or None.
        stopped_by: ``pruner`` | ``budget`` for pruned trials, else None.
        error: Why it failed, or None.
        avoided_energy_j: Estimated energy pruning avoided (pruned trials), in joules.
        avoided_co2e_g: The same in gCO2e.
    """

    number: int
    run_id: str | None
    state: str
    value: float | None
    params: dict[str, Any]
    energy_j: float
    co2e_g: float
    duration_s: float
    last_step: int | None = None
    stopped_by: str | None = None
    error: str | None = None
    avoided_energy_j: float = 0.0
    avoided_co2e_g: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON shape."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class TuneResult:
    """What a study found and what it cost.

    Attributes:
        study_id: The driver run's id; every trial run has it as ``study_id``.
        study_name: Name of the study (and of the driver run).
        direction: ``minimize`` or ``maximize``.
        trials: Every trial, by number.
        best: The best complete trial, or None.
        pareto_front: Trials no other trial beats on both value and energy (complete and
            pruned, cheapest first).
        budget: The limits the study ran under.
        spent: What the study cost: its trials plus its driver.
        stop_reason: ``n_trials``, ``energy_budget``, ``carbon_budget``, ``timeout``,
            ``search_space_exhausted``, ``interrupted`` (Ctrl-C), ``terminated`` (SIGTERM
            under ``wattwise tune``) or ``error``.
        overshoot: How far past the limits it went and the bound (see ``_budget.overshoot``).
        avoided_energy_j: Estimated energy pruning avoided, against running every started
            trial to its end, in joules.
        avoided_co2e_g: The same in gCO2e.
        summary: The study record stored in the driver run as ``record["extra"]["study"]``,
            as JSON (``record`` has it typed).
        study: The Optuna study (in memory), for Optuna's own tools.
    """

    study_id: str
    study_name: str
    direction: str
    trials: list[TrialSummary]
    best: TrialSummary | None
    pareto_front: list[TrialSummary]
    budget: Budget
    spent: Spent
    stop_reason: str
    overshoot: dict[str, Any]
    avoided_energy_j: float
    avoided_co2e_g: float
    summary: dict[str, Any]
    study: Any = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def best_params(self) -> dict[str, Any]:
        """Parameters of the best trial ({} when none completed)."""
        return dict(self.best.params) if self.best else {}

    @property
    def best_value(self) -> float | None:
        """Value of the best trial, or None."""
        return self.best.value if self.best else None

    @property
    def record(self) -> StudyRecord:
        """The study record (``summary``), typed."""
        return StudyRecord.from_dict(self.summary)

    def to_dict(self) -> dict[str, Any]:
        """The study summary plus every trial: the shape of ``wattwise tune --json``."""
        return {**self.summary, "trials": [t.to_dict() for t in self.trials]}


class Terminated(KeyboardInterrupt):
    """SIGTERM as an exception (``wattwise tune`` raises it in its main thread): a study stops
    on it as on Ctrl-C, with the stop reason ``terminated``."""


class StudyInterrupted(KeyboardInterrupt):
    """A study stopped by Ctrl-C (or SIGTERM under ``wattwise tune``).

    Still a ``KeyboardInterrupt``, raised by :func:`tune` from the original once no trial
    is left running: every trial's run and the study run have ended in the ledger, and
    ``result`` is the study so far (stop reason ``interrupted`` or ``terminated``).
    """

    def __init__(self, result: TuneResult) -> None:
        super().__init__(
            f"Study {result.study_name!r} {result.stop_reason} after {len(result.trials)} "
            f"trials; its summary is in the ledger: wattwise show {result.study_id[:8]}"
        )
        self.result = result


@dataclasses.dataclass
class _Live:
    """A running trial, as the driver sees it."""

    trial: optuna.trial.Trial
    run_id: str | None = None
    pid: int | None = None
    energy_j: float = 0.0
    co2e_g: float = 0.0
    #: The last step shown to the pruner.
    fidelity_step: int | None = None
    #: ``(value, energy so far)`` of the reports made while the energy unit was unknown:
    #: given to the pruner, at their energy steps, once it is known.
    pending: list[tuple[float, float]] = dataclasses.field(default_factory=list)
    prune: bool = False
    #: ``(step, energy so far)`` at each report, and the step it declared it ends at.
    reports: list[tuple[int, float]] = dataclasses.field(default_factory=list)
    max_step: int | None = None
    prediction: Any = None


class _Direct:
    """The inline executor's channel: a plain call into the driver."""

    def __init__(self, driver: _Driver) -> None:
        self._driver = driver

    def call(self, message: dict[str, Any]) -> Any:
        return self._driver.handle(message)


class _Driver:
    """The study's driver: owns the Optuna study, the budgets and the bookkeeping."""

    def __init__(
        self,
        *,
        study: optuna.Study,
        budget: Budget,
        space: dict[str, Any] | None,
        energy_fidelity: bool,
        energy_step_j: float | None,
        run: StudyRun,
        ledger: StudyLedger,
        study_name: str,
        tags: list[str],
        inline: bool,
        progress: Progress,
        resumed: Resumed | None = None,
    ) -> None:
        self.study = study
        self.budget = budget
        self.space = space
        self.energy_fidelity = energy_fidelity
        self.unit_j = energy_step_j
        self.energy_step_j = energy_step_j
        #: How the energy unit was derived (None: given, off, or not known yet).
        self.unit_from: dict[str, Any] | None = None
        self.run = run
        self.tree: StudyTree = run.tree
        #: The driver's own calls to the ledger: bounded (see ``_writer``).
        self.ledger = ledger
        self.store = ledger.store
        self.study_name = study_name
        self.tags = tags
        self.inline = inline
        self.progress = progress
        self.t0 = time.monotonic()
        self.live: dict[int, _Live] = {}
        self.outcomes: dict[int, dict[str, Any]] = {}
        #: What earlier sessions of a resumed study left (their trials count as started).
        self.resumed = resumed or Resumed()
        self.started = self.resumed.trials
        self.done_energy_j = 0.0
        self.done_co2e_g = 0.0
        self.exhausted: str | None = None
        self.running_at_stop = 0
        self.halted: str | None = None  # search_space_exhausted | interrupted | error
        self.error: BaseException | None = None
        self.best: tuple[int, float] | None = None
        self.max_interval_j = 0.0
        self.max_interval_s = 0.0
        self._driver_cache: tuple[float, dict[str, float]] | None = None
        self._last_progress = 0.0
        #: Trials stopped on a prediction, and why no further trial started (if so).
        self.would_overshoot: list[dict[str, Any]] = []
        self.not_started: str | None = None
        self._calibration: dict[tuple[int, int], list[float]] = {}
        if energy_fidelity:
            self._recover_unit()

    # -- spending and budgets ------------------------------------------------------------

    def _driver_cost(self, *, fresh: bool = False) -> dict[str, float]:
        now = time.monotonic()
        if fresh or self._driver_cache is None or now - self._driver_cache[0] > 0.25:
            self._driver_cache = (now, self.run.snapshot())
        return self._driver_cache[1]

    def spent(self, *, fresh: bool = False) -> Spent:
        """Trials done + trials running (as of their last report) + the driver, so far, plus
        what earlier sessions of a resumed study spent."""
        own = self._driver_cost(fresh=fresh)
        prior = self.resumed
        return Spent(
            energy_j=prior.energy_j + self.done_energy_j
            + sum(t.energy_j for t in self.live.values()) + own["energy_j"],
            co2e_g=prior.co2e_g + self.done_co2e_g + sum(t.co2e_g for t in self.live.values())
            + own["co2e_g"],
            duration_s=time.monotonic() - self.t0,
        )  # fmt: skip

    def check_budget(self) -> str | None:
        """The limit reached, if any (remembered: a study does not un-exhaust)."""
        if self.exhausted is None:
            reason = self.budget.exhausted(self.spent())
            if reason is not None:
                self.exhausted = reason
                self.running_at_stop = len(self.live)
        return self.exhausted

    # -- trial lifecycle -------------------------------------------------------------------

    def ask(self) -> dict[str, Any] | None:
        """The next trial to run, or None when the study must not start another."""
        if self.halted or self.error is not None:
            return None
        if self.budget.n_trials is not None and self.started >= self.budget.n_trials:
            return None
        if self.check_budget() is not None:
            return None
        if self._start_would_overshoot():
            return None
        trial = self.study.ask(fixed_distributions=self.space) if self.space else self.study.ask()
        self.started += 1
        self.live[trial.number] = _Live(trial)
        trial.set_user_attr(STUDY_RUN_ATTR, self.run.id)
        return {
            "number": trial.number, "study_id": self.run.id, "study_name": self.study_name,
            "params": dict(trial.params), "tags": self.tags,
        }  # fmt: skip

    def handle(self, message: dict[str, Any]) -> Any:
        """Answer a trial's request (``started``, ``call``, ``report``)."""
        live = self.live.get(int(message["number"]))
        if live is None:
            msg = (
                f"Trial {message['number']} is not running in study {self.study_name!r}: it "
                "has ended. Use a trial only inside the objective call that received it."
            )
            return {"error": TrialStateError(msg), "prune": True, "stop": "error"}
        op = message["op"]
        if op == "started":
            live.run_id, live.pid = message["run_id"], message["pid"]
            live.trial.set_user_attr(RUN_ATTR, live.run_id)
            if not self.inline:
                self.tree.worker_trial_started(message["pid"], message["cpu_s"])
            return {}
        if op == "call":
            method = message["method"]
            if method not in _FORWARDED:
                return {"error": SearchError(f"Trial method {method!r} cannot be forwarded.")}
            try:
                value = getattr(live.trial, method)(*message["args"], **message["kwargs"])
            except Exception as err:
                return {"error": portable_error(err)}
            return {"value": value}
        if op == "report":
            return self._report(live, message)
        return {"error": SearchError(f"Unknown request {op!r} from trial {message['number']}.")}

    def _report(self, live: _Live, message: dict[str, Any]) -> dict[str, Any]:
        live.energy_j, live.co2e_g = float(message["energy_j"]), float(message["co2e_g"])
        value = float(message["value"])
        step: int | None = None
        if self.energy_fidelity and self.unit_j is None:
            live.pending.append((value, live.energy_j))  # shown once the unit is known
        else:
            decisions = self._replay(live)
            step = self._fidelity_step(live, int(message["step"]), live.energy_j)
            if step is not None:
                decisions.append(self._show_pruner(live, value, step))
            if decisions:  # pruned if it would have been at any report now shown
                live.prune = any(decisions)
        stop = self.check_budget()
        over = None if stop is not None else self._trial_would_overshoot(live, message)
        self._show()
        return {"prune": live.prune, "stop": stop, "fidelity_step": step, "overshoot": over}

    def _trial_would_overshoot(self, live: _Live, message: dict[str, Any]) -> str | None:
        """Predict the trial's total energy; the reason to stop it if it would overshoot.

        The trial ends at the step it declared (``set_max_step``), else at the median last
        step of the complete trials; without either, or with fewer than three reports, there
        is no prediction and the trial runs on (the budget still stops it once spent). The
        interval is calibrated on the complete trials (conformal quantile of their errors).
        """
        from wattwise.tracking import predict_energy, relative_error

        live.reports.append((int(message["step"]), live.energy_j))
        if message.get("max_step") is not None:
            live.max_step = int(message["max_step"])
        if self.budget.energy_j is None and not self.progress.enabled:
            return None  # nobody would use it
        end = live.max_step
        if end is None:
            ends = [o["reports"][-1][0] for o in self.outcomes.values()
                    if o["state"] == "complete" and o.get("reports")]  # fmt: skip
            end = int(sorted(ends)[len(ends) // 2]) if ends else None
        # calibration: how far each complete trial's total was from the prediction made from
        # as many of its reports (conformal; see wattwise.tracking._predict)
        # (the latest 30 complete trials; computed once per report count and completion)
        complete = [o for o in self.outcomes.values()
                    if o["state"] == "complete" and o.get("reports")][-30:]  # fmt: skip
        key = (len(live.reports), len(complete))
        if key not in self._calibration:
            errors = [
                relative_error([(r[0], r[2]) for r in o["reports"]], len(live.reports),
                               float(o.get("energy_j") or 0.0), o["reports"][-1][0])
                for o in complete
            ]  # fmt: skip
            self._calibration[key] = [e for e in errors if e is not None]
        live.prediction = None if end is None else predict_energy(
            live.reports, end_step=end, calibration=self._calibration[key]
        )  # fmt: skip
        reason = trial_would_overshoot(self.budget, self.spent(), live.prediction)
        if reason is not None:
            p = live.prediction
            self.would_overshoot.append({
                "number": live.trial.number, "reason": reason, "predicted_j": p.total_j,
                "low_j": p.low_j, "high_j": p.high_j, "energy_so_far_j": p.energy_so_far_j,
                "end_step": p.end_step, "method": p.method,
            })  # fmt: skip
        return reason

    def _start_would_overshoot(self) -> bool:
        """Whether the next trial would overshoot the energy budget (then none starts)."""
        if self.not_started is None:
            costs = [float(o.get("energy_j") or 0.0) for o in self.outcomes.values()
                     if o["state"] == "complete"]  # fmt: skip
            costs += [float(w["low_j"]) for w in self.would_overshoot]
            self.not_started = start_would_overshoot(self.budget, self.spent(), costs)
        return self.not_started is not None

    def _fidelity_step(self, live: _Live, step: int, energy_j: float) -> int | None:
        """The pruner's step: the report's step, or the energy spent in ``unit_j`` units.

        Returns None when the step would not increase (Optuna keeps one value per step):
        that report is logged in the ledger but not shown to the pruner.
        """
        if self.energy_fidelity:
            assert self.unit_j is not None
            step = int(energy_j / self.unit_j)
        if live.fidelity_step is not None and step <= live.fidelity_step:
            return None
        live.fidelity_step = step
        return step

    def _show_pruner(self, live: _Live, value: float, step: int) -> bool:
        """Report ``value`` at the pruner's ``step``; whether the pruner says to stop."""
        live.trial.report(value, step)
        return bool(live.trial.should_prune())

    def _replay(self, live: _Live) -> list[bool]:
        """Give the pruner the reports a trial made before the energy unit was known, in
        order, each at its energy step, asking the pruner after each as it would have been
        asked then (successive halving records a trial's value at each rung it passes).
        Returns the pruner's decisions."""
        decisions = []
        for value, energy_j in live.pending:
            step = self._fidelity_step(live, 0, energy_j)
            if step is not None:
                decisions.append(self._show_pruner(live, value, step))
        live.pending.clear()
        return decisions

    def _calibrate(self, number: int, run_id: Any, energy_j: float, *, earlier: bool) -> None:
        """Set the energy unit from a complete trial's energy (one training, measured) and
        keep it in the study (a resumed study reads it back)."""
        self.unit_j = energy_j / ENERGY_STEPS_PER_TRAINING
        self.unit_from = {
            "trial": number, "run_id": run_id if isinstance(run_id, str) else None,
            "energy_j": energy_j, "earlier_session": earlier,
        }  # fmt: skip
        self.study.set_user_attr(ENERGY_STEP_ATTR, {
            "step_j": self.unit_j, "source": "auto",
            "steps_per_training": ENERGY_STEPS_PER_TRAINING, "trial": number,
            "run_id": self.unit_from["run_id"], "energy_j": energy_j,
        })  # fmt: skip

    def _recover_unit(self) -> None:
        """The energy unit: given, kept by an earlier session of the study, or (studies
        whose sessions did not keep it: ``wattwise.optuna``'s loops, older versions) derived
        from the energy of its first complete trial; else left to calibrate."""
        import optuna

        stored = self.study.user_attrs.get(ENERGY_STEP_ATTR)
        if self.unit_j is not None:  # given: it wins over what the study kept
            if not isinstance(stored, Mapping) or stored.get("step_j") != self.unit_j:
                self.study.set_user_attr(
                    ENERGY_STEP_ATTR, {"step_j": self.unit_j, "source": "given"}
                )
            return
        if isinstance(stored, Mapping) and _positive(stored.get("step_j")):
            self.unit_j = float(stored["step_j"])
            if stored.get("source") != "given":
                self.unit_from = {
                    "trial": stored.get("trial"), "run_id": stored.get("run_id"),
                    "energy_j": stored.get("energy_j"), "earlier_session": True,
                }  # fmt: skip
            return
        done = [
            t for t in self.study.get_trials(
                deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
            if _positive(t.user_attrs.get(ENERGY_ATTR))
        ]  # fmt: skip
        if done:
            first = min(done, key=lambda t: (t.datetime_complete is None, t.datetime_complete
                                             or 0, t.number))  # fmt: skip
            self._calibrate(first.number, first.user_attrs.get(RUN_ATTR),
                            float(first.user_attrs[ENERGY_ATTR]), earlier=True)  # fmt: skip

    def fidelity_record(self) -> dict[str, Any]:
        """The study record's ``energy_fidelity``: ``enabled``, ``step_j``, ``step_j_source``
        (in words) and, for a derived unit, what it was derived from."""
        if self.energy_step_j is not None or not self.energy_fidelity:
            return {
                "enabled": self.energy_fidelity, "step_j": self.unit_j,
                "step_j_source": "given" if self.energy_step_j is not None else None,
            }  # fmt: skip
        n = ENERGY_STEPS_PER_TRAINING
        if self.unit_j is None:
            return {
                "enabled": True, "step_j": None, "steps_per_training": n,
                "step_j_source": (
                    "auto: not known, no trial completed with a measured energy (reports "
                    "were logged, not shown to the pruner)"
                ),
            }  # fmt: skip
        if self.unit_from is None:  # a unit given to an earlier session of the study
            return {"enabled": True, "step_j": self.unit_j,
                    "step_j_source": "given (to an earlier session of the study)"}  # fmt: skip
        came = self.unit_from
        energy = came.get("energy_j")
        shown = f", {energy:.4g} J" if _positive(energy) else ""
        return {
            "enabled": True, "step_j": self.unit_j,
            "step_j_source": (
                f"auto: 1/{n} of the energy of the first complete trial (trial "
                f"{came.get('trial')}{shown})"
                + (", kept from an earlier session of the study"
                   if came.get("earlier_session") else "")
            ),
            "steps_per_training": n, "calibrated_on_trial": came.get("trial"),
            "calibrated_on_run_id": came.get("run_id"), "calibrated_on_energy_j": energy,
            "from_earlier_session": bool(came.get("earlier_session")),
        }  # fmt: skip

    def finish(self, outcome: dict[str, Any]) -> None:
        """Tell Optuna how a trial ended and add its cost."""
        import optuna

        number = int(outcome["number"])
        live = self.live.pop(number, None)
        self.outcomes[number] = outcome
        self.done_energy_j += float(outcome.get("energy_j") or 0.0)
        self.done_co2e_g += float(outcome.get("co2e_g") or 0.0)
        self.max_interval_j = max(self.max_interval_j, float(outcome.get("max_interval_j", 0)))
        self.max_interval_s = max(self.max_interval_s, float(outcome.get("max_interval_s", 0)))
        if not self.inline and outcome.get("pid") is not None:
            self.tree.worker_trial_ended(outcome["pid"], outcome.get("cpu_end_s"))
        if live is not None:
            if self.energy_fidelity:
                energy = float(outcome.get("energy_j") or 0.0)
                if self.unit_j is None and outcome["state"] == "complete" and _positive(energy):
                    # the first complete trial: one training, measured, sets the unit
                    self._calibrate(number, outcome.get("run_id"), energy, earlier=False)
                if self.unit_j is not None:
                    self._replay(live)  # its values at the rungs, for the trials to come
            state = {
                "complete": optuna.trial.TrialState.COMPLETE,
                "pruned": optuna.trial.TrialState.PRUNED,
            }.get(outcome["state"], optuna.trial.TrialState.FAIL)
            value = outcome["value"] if outcome["state"] == "complete" else None
            self._set_energy(live.trial, outcome)
            self._tell(live.trial, value, state)
        if outcome["state"] == "complete":
            value = float(outcome["value"])
            if self.best is None or self._better(value, self.best[1]):
                self.best = (number, value)
        self._show(force=True)

    def died(self, number: int | None, error: str) -> None:
        """A worker died in trial ``number``: a failed trial, with the energy it spent."""
        import optuna

        if number is None:
            return
        live = self.live.pop(number, None)
        if live is None:
            return
        if live.pid is not None:
            self.tree.worker_trial_ended(live.pid, None)
        energy, co2e, duration = live.energy_j, live.co2e_g, 0.0
        if live.run_id is not None:
            run_id = live.run_id
            try:  # bounded: a ledger that hangs leaves the figures of its last report
                record = self.ledger.call(
                    lambda store: self._crashed_record(store, run_id, error, live),
                    what=f"mark the run of trial {number} crashed", keep=True,
                )  # fmt: skip
                energy, co2e, duration = record.energy_j, record.co2e_g, record.duration_s
            except StoreError as err:
                later = (  # a late call is still made when the ledger answers; a failed one not
                    "its run's crash note is written if the ledger answers while this process "
                    "lives" if isinstance(err, LedgerLateError) else "its run is not annotated"
                )  # fmt: skip
                self.ledger.warn("died", f"{err}. The study counts that trial with the energy "
                                 f"of its last report; {later} (a later writer of the ledger "
                                 "marks the run crashed, once the ledger holds it).")  # fmt: skip
        if self.energy_fidelity and self.unit_j is not None:
            self._replay(live)
        self._set_energy(live.trial, {"energy_j": energy, "co2e_g": co2e})
        self._tell(live.trial, None, optuna.trial.TrialState.FAIL)
        self.outcomes[number] = {
            "number": number, "run_id": live.run_id, "state": "fail", "value": None,
            "stopped_by": None, "error": error, "exception": None, "energy_j": energy,
            "co2e_g": co2e, "duration_s": duration, "reports": [], "max_step": None,
            "params": dict(live.trial.params), "crashed": True,
        }  # fmt: skip
        self.done_energy_j += energy
        self.done_co2e_g += co2e
        self._show(force=True)

    def _crashed_record(
        self, store: BaseRunStore, run_id: str, error: str, live: _Live
    ) -> RunRecord:
        """Mark the dead worker's trial run crashed (if the reaper has not) and annotate it
        (on the ledger's thread: ``self.ledger.call``)."""
        store.reap()
        record = store.get_run(run_id)
        fields: dict[str, Any] = {}
        if record.status is RunStatus.RUNNING:  # its process is gone: we know it crashed
            fields.update(status=RunStatus.CRASHED, ended_at=record.heartbeat_at)
        extra = record.record.setdefault("extra", {})
        extra[TrialRecord.KEY] = TrialRecord(
            number=live.trial.number, state="fail", error=error,
            params=dict(live.trial.params), crashed=True,
        ).to_record()  # fmt: skip
        fields["record"] = record.record
        fields["params"] = {**record.params, **live.trial.params}
        store.flush_run(run_id, fields)
        return store.get_run(run_id)

    def _set_energy(self, trial: optuna.trial.Trial, outcome: Mapping[str, Any]) -> None:
        """Put the trial's figures in its user attributes (optuna-dashboard shows them)."""
        trial.set_user_attr(ENERGY_ATTR, float(outcome.get("energy_j") or 0.0))
        trial.set_user_attr(CO2E_ATTR, float(outcome.get("co2e_g") or 0.0))
        if "energy_band_j" in outcome:
            trial.set_user_attr(ENERGY_BAND_ATTR, float(outcome["energy_band_j"] or 0.0))
            trial.set_user_attr(CO2E_BAND_ATTR, float(outcome.get("co2e_band_g") or 0.0))

    def _tell(self, trial: optuna.trial.Trial, value: float | None, state: Any) -> None:
        try:
            if value is not None:
                self.study.tell(trial, value)
            else:
                self.study.tell(trial, state=state)
        except RuntimeError as err:  # a GridSampler calling study.stop() when it is done
            if "stop" not in str(err).lower():
                raise
            self.halted = "search_space_exhausted"

    def _better(self, a: float, b: float) -> bool:
        maximize = self.study.direction.name == "MAXIMIZE"
        return a > b if maximize else a < b

    def _show(self, *, force: bool = False) -> None:
        if not self.progress.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last_progress < 0.25:
            return
        self._last_progress = now
        counts: dict[str, int] = {}
        for outcome in self.outcomes.values():
            counts[outcome["state"]] = counts.get(outcome["state"], 0) + 1
        self.progress.update(
            status_line(
                counts=counts, running=len(self.live), best=self.best, spent=self.spent(),
                budget=self.budget,
                predictions={n: live.prediction for n, live in self.live.items()},
            )
        )  # fmt: skip


# -- the study -------------------------------------------------------------------------------


def _positive(value: object) -> bool:
    """Whether ``value`` is a finite number > 0 (not a bool)."""
    return (
        isinstance(value, (int, float)) and not isinstance(value, bool)
        and math.isfinite(value) and value > 0
    )  # fmt: skip


def _check_choice(name: str, value: Any, options: Iterable[str]) -> str:
    options = tuple(options)
    if value not in options:
        msg = (
            f"The {name!r} parameter of wattwise.tune must be one of "
            f"{', '.join(repr(o) for o in options)}. Got {value!r} instead."
        )
        raise InvalidParameterError(msg)
    return str(value)


def _is_none(value: object) -> bool:
    return value is None


def _objective_ref(objective: Callable[..., Any] | str) -> ObjectiveRef:
    if isinstance(objective, str):
        path, _, name = objective.rpartition(":")
        if not path or not name.isidentifier():
            path, name = objective, "objective"
        return ObjectiveRef(path=path, name=name)
    checked: object = objective
    if not callable(checked):
        msg = (
            "The 'objective' parameter of wattwise.tune must be a callable objective(trial) "
            f"or 'FILE.py[:NAME]'. Got {objective!r} instead."
        )
        raise InvalidParameterError(msg)
    return ObjectiveRef(fn=objective)


def _run_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    options = dict(options or {})
    unknown = sorted(set(options) - RUN_OPTIONS)
    if unknown:
        msg = (
            f"The 'run_options' parameter of wattwise.tune accepts {sorted(RUN_OPTIONS)}. "
            f"Got unknown keys {unknown} instead."
        )
        raise InvalidParameterError(msg)
    instances = options.pop("meter_instances", None)  # 0.1's spelling of meters=[objects]
    if instances is not None:
        is_list = isinstance(instances, Iterable) and not isinstance(instances, (str, bytes))
        from wattwise.meters import BaseMeter

        given = list(instances) if is_list else instances
        if "meters" in options or not is_list or not all(isinstance(m, BaseMeter) for m in given):
            msg = (
                "The 'meter_instances' run option of wattwise.tune must be a list of "
                f"wattwise.meters.BaseMeter objects (and not given with 'meters'). Got "
                f"{given!r} instead. Pass meter objects as 'meters' instead."
            )
            raise InvalidParameterError(msg)
        options["meters"] = given
    meters = options.get("meters")
    if meters is not None:
        # Meter ids, meter objects (custom hardware, or a FakeMeter on a scripted clock,
        # which makes budgets testable without sleeping), or both: runs take them as they
        # are. A list, so that the driver and every trial get the same meters.
        if isinstance(meters, (str, bytes)) or not isinstance(meters, Iterable):
            msg = (
                "The 'meters' run option of wattwise.tune must be a list of meter ids or "
                f"wattwise.meters.BaseMeter objects. Got {meters!r} instead; put it in a list."
            )
            raise InvalidParameterError(msg)
        options["meters"] = list(meters)
    return options


def tune(
    objective: Callable[[Trial], float] | str,
    space_or_sampler: Mapping[str, Any] | BaseSampler | None = None,
    *,
    sampler: BaseSampler | None = None,
    pruner: BasePruner | None = None,
    n_trials: int | None = None,
    budget_kwh: float | None = None,
    budget_co2e_g: float | None = None,
    timeout_s: float | None = None,
    executor: str = "inline",
    n_workers: int | None = None,
    direction: str = "minimize",
    energy_fidelity: bool | None = None,
    energy_step_j: float | None = None,
    seed: int | None = None,
    study_name: str | None = None,
    store: BaseRunStore | str | None = None,
    catch: tuple[type[BaseException], ...] = (),
    progress: bool | None = None,
    tags: Iterable[str] = (),
    run_options: Mapping[str, Any] | None = None,
    cpus_per_trial: float = 1.0,
    gpus_per_trial: float = 0.0,
    storage: str | optuna.storages.BaseStorage | None = None,
    resume: bool = False,
) -> TuneResult:
    """Search hyperparameters with Optuna, every trial metered, within physical budgets.

    The objective is Optuna-style: ``objective(trial) -> float``, with ``trial.suggest_*``,
    ``trial.report(value, step)`` and ``if trial.should_prune(): raise optuna.TrialPruned()``.
    It receives a :class:`wattwise.tuning.Trial`, whose ``report()`` also logs the value and
    the energy so far in the trial's run, and stops the trial once a budget is spent.

    Args:
        objective: ``objective(trial) -> float``, or ``"FILE.py[:NAME]"`` (default NAME
            ``objective``). For ``processes`` and ``ray`` it must be importable by the
            workers (module level of a file, or given as a path).
        space_or_sampler: A search space (dict of Optuna distributions or short forms,
            see :mod:`wattwise.tuning._space`) sampled by the driver before each trial, or an
            Optuna sampler. None: the objective suggests its own parameters.
        sampler: An Optuna sampler (default :func:`default_sampler`:
            ``TPESampler(seed=seed)``, random for its first 10 trials).
        pruner: An Optuna pruner (default :func:`default_pruner`:
            ``SuccessiveHalvingPruner(min_resource=6, reduction_factor=2)``, with energy as
            the fidelity: a first rung at 6/32 of the first complete trial's energy).
            ``optuna.pruners.NopPruner()`` turns pruning off.
        n_trials: Most trials to start.
        budget_kwh: Energy budget of the whole study (trials and driver), in kWh.
        budget_co2e_g: Carbon budget, in gCO2e.
        timeout_s: Wall-time budget, in seconds.
        executor: ``inline`` (this process, one trial at a time, reproducible),
            ``processes`` (local worker processes) or ``ray`` (Ray actors).
        n_workers: Trials at once (``processes``: default CPU count; ``ray``: cluster CPUs
            / ``cpus_per_trial``; ``inline``: 1).
        direction: ``minimize`` or ``maximize`` the objective.
        energy_fidelity: Give the pruner cumulative energy as the step instead of the
            report's step, so trials are compared at equal energy spent. None (default):
            on with the default pruner, off with a pruner you give.
        energy_step_j: Joules per pruner step with energy fidelity (default: 1/32 of the
            energy of the study's first complete trial; until one completes, reports are
            logged and given to the pruner once the unit is known). A resumed study keeps
            the unit of its earlier sessions unless one is given.
        seed: Seed of the default sampler.
        study_name: Name of the study and its driver run (default ``tune-<objective>``).
        store: The ledger (store object or path; default: the project's).
        catch: Exception types that fail a trial but let the study go on. Others fail the
            trial, end the study (``stop_reason='error'``) and are raised. A worker that
            dies always lets the study go on.
        progress: Live status line on stderr: True, False, or None (when stderr is a TTY).
        tags: Tags of every run of the study.
        run_options: Passed to every run: ``region``, ``meters``, ``interval_s``,
            ``flush_s``, ``pue``, ``emit_warnings``, ``on_warning``. ``meters`` takes meter
            ids, or meter objects (:class:`wattwise.meters.BaseMeter`) used by the driver
            and every trial: a custom meter, or ``wattwise.testing.FakeMeter(...,
            clock=...)`` on a scripted clock (they must pickle for the ``processes`` and
            ``ray`` executors). ``meter_instances`` is 0.1's name for meter objects.
        cpus_per_trial: CPUs Ray reserves per trial (``ray`` only).
        gpus_per_trial: GPUs Ray reserves per trial (``ray`` only).
        storage: Where the Optuna study lives: an RDB URL (``sqlite:///study.db``) or an
            Optuna storage object. None: in memory, gone with the process.
        resume: Continue the study named ``study_name`` in ``storage`` if it exists (else
            create it): its trials count against ``n_trials`` and its earlier sessions'
            energy and carbon against the budgets; trials a killed session left running
            are failed. This session is a new study run, linked to the earlier ones.

    Returns:
        The study's result; its summary is also in the driver run's record.

    Raises:
        InvalidParameterError: A parameter is out of its constraints.
        SearchError: The objective cannot be loaded or sent to the workers.
        StudyInterrupted: Ctrl-C (a ``KeyboardInterrupt``) stopped the study: no further
            trial started, the running ones were interrupted and their runs ended failed
            with their energy, the study run ended with the stop reason ``interrupted``;
            the exception's ``result`` is the study so far.
    """
    import optuna

    ref = _objective_ref(objective)
    budget = Budget.from_args(
        budget_kwh=budget_kwh, budget_co2e_g=budget_co2e_g, timeout_s=timeout_s,
        n_trials=n_trials,
    )  # fmt: skip
    executor = _check_choice("executor", executor, EXECUTORS)
    direction = _check_choice("direction", direction, DIRECTIONS)
    if n_workers is not None and (
        isinstance(n_workers, bool) or not isinstance(n_workers, int) or n_workers < 1
    ):
        msg = (
            "The 'n_workers' parameter of wattwise.tune must be an int in the range [1, inf) "
            f"or None. Got {n_workers!r} instead."
        )
        raise InvalidParameterError(msg)
    if executor == "inline" and n_workers not in (None, 1):
        msg = (
            f"The inline executor runs one trial at a time; got n_workers={n_workers}. Use "
            "executor='processes' or 'ray' to run trials in parallel."
        )
        raise InvalidParameterError(msg)
    if energy_step_j is not None:
        from wattwise._config import check_positive

        energy_step_j = check_positive("energy_step_j", energy_step_j, "wattwise.tune")
    space: dict[str, Any] | None = None
    if isinstance(space_or_sampler, optuna.samplers.BaseSampler):
        if sampler is not None:
            msg = "Give the sampler once: as space_or_sampler or as sampler=, not both."
            raise InvalidParameterError(msg)
        sampler = space_or_sampler
    elif isinstance(space_or_sampler, Mapping):
        space = parse_space(space_or_sampler)
    elif not _is_none(space_or_sampler):
        msg = (
            "The 'space_or_sampler' parameter of wattwise.tune must be a search space dict, "
            f"an Optuna sampler or None. Got {space_or_sampler!r} instead."
        )
        raise InvalidParameterError(msg)
    given: tuple[object, object] = (sampler, pruner)  # checked at run time, whatever the hints
    if given[0] is not None and not isinstance(given[0], optuna.samplers.BaseSampler):
        msg = (
            "The 'sampler' parameter of wattwise.tune must be an Optuna sampler. "
            f"Got {sampler!r} instead."
        )
        raise InvalidParameterError(msg)
    if given[1] is not None and not isinstance(given[1], optuna.pruners.BasePruner):
        msg = (
            "The 'pruner' parameter of wattwise.tune must be an Optuna pruner. "
            f"Got {pruner!r} instead."
        )
        raise InvalidParameterError(msg)
    options = _run_options(run_options)
    # load errors surface before anything is recorded
    objective_fn = ref.load() if executor == "inline" else None
    name = study_name or f"tune-{ref.label}"
    tag_list = [str(t) for t in tags]

    fidelity: object = energy_fidelity  # checked at run time, whatever the hints
    if fidelity is not None and not isinstance(fidelity, bool):
        msg = (
            "The 'energy_fidelity' parameter of wattwise.tune must be a bool or None. Got "
            f"{energy_fidelity!r} instead."
        )
        raise InvalidParameterError(msg)
    if sampler is None:
        sampler = default_sampler(seed)
    if pruner is None:
        pruner = default_pruner()
        energy_fidelity = True if energy_fidelity is None else energy_fidelity
    energy_fidelity = bool(energy_fidelity)
    flag: object = resume  # checked at run time, whatever the hints
    if not isinstance(flag, bool):
        msg = f"The 'resume' parameter of wattwise.tune must be a bool. Got {resume!r} instead."
        raise InvalidParameterError(msg)
    study = open_study(
        storage=storage, resume=resume, study_name=name, direction=direction,
        sampler=sampler, pruner=pruner,
    )  # fmt: skip

    ledger, owns_store = open_ledger(store)
    study_ledger = StudyLedger(
        ledger, owned=owns_store, on_warning=options.get("on_warning"),
        emit_warnings=options.get("emit_warnings", True) is not False,
    )  # fmt: skip
    resumed = Resumed()
    if storage is not None:
        try:  # bounded: without the ledger, what the Optuna study holds
            resumed = study_ledger.call(lambda led: take_over(study, led),
                                        what="read the earlier sessions' runs")  # fmt: skip
        except StoreError as err:
            resumed = resumed_without_ledger(study)
            study_ledger.warn("resume", f"{err}. The study resumes with the energy Optuna "
                              "holds for each earlier trial; trials a killed session left "
                              "running are left as they are.")  # fmt: skip
    trial_options = {**options, "store": ledger if executor == "inline" else ledger.url}
    pool: WorkerPool | None = None
    if executor != "inline":
        pool = make_pool(
            executor, ref, trial_options, n_workers, cpus_per_trial=cpus_per_trial,
            gpus_per_trial=gpus_per_trial, env=ledger.child_environment(),
        )  # fmt: skip
    config = {
        "objective": ref.label, "executor": executor,
        "n_workers": 1 if pool is None else n_workers or pool.n_workers or None,
        "direction": direction,
        "sampler": type(sampler).__name__, "pruner": type(pruner).__name__, "seed": seed,
        "energy_fidelity": energy_fidelity, "energy_step_j": energy_step_j,
        **{k: v for k, v in budget.to_dict().items() if k != "energy_j"},
    }  # fmt: skip
    if storage is not None:
        config.update(storage=storage_label(study), resume=resume,
                      session=len(resumed.previous_study_run_ids) + 1)  # fmt: skip
    driver_options = dict(options)
    if "meters" in options:  # the driver's own list: the same meter objects
        driver_options["meters"] = list(options["meters"])
    run = StudyRun(
        name, kind="study", config=config, tags=tag_list, store=ledger, **driver_options
    )
    run.start()
    study.set_user_attr(STUDY_RUNS_ATTR, [*resumed.previous_study_run_ids, run.id])
    bar = Progress(progress, f"wattwise tune {name}")
    driver = _Driver(
        study=study, budget=budget, space=space, energy_fidelity=energy_fidelity,
        energy_step_j=energy_step_j, run=run, ledger=study_ledger, study_name=name, tags=tag_list,
        inline=pool is None, progress=bar, resumed=resumed,
    )  # fmt: skip
    interrupted: BaseException | None = None
    try:
        if pool is None:
            assert objective_fn is not None
            _run_inline(driver, objective_fn, trial_options, catch)
        else:
            _run_pool(driver, pool, catch)
    except KeyboardInterrupt as err:
        interrupted = err
        driver.halted = "interrupted"
    except BaseException as err:  # a worker could not start, the ledger failed, ...
        driver.error = err
    finally:
        bar.close()
        if pool is not None:
            if interrupted is not None or isinstance(driver.error, KeyboardInterrupt):
                _stop_trials(driver, pool)
            pool.close(kill=interrupted is not None or driver.error is not None)
    for number in list(driver.live):
        driver.died(number, "stopped: the study ended before this trial")
    error = driver.error
    if error is not None and isinstance(error, KeyboardInterrupt):  # raised in a trial
        interrupted = error if interrupted is None else interrupted
        error = None
        driver.halted = "interrupted"
    result = _summarize(
        driver, direction, executor, pool, interrupted, error,
        storage=None if storage is None else storage_label(study),
    )  # fmt: skip
    run.annotate(StudyRecord.KEY, result.summary)
    failed = interrupted is not None or error is not None
    run.finish("failed" if failed else "finished", error=result.stop_reason if failed else None)
    study_ledger.close()  # bounded; closes the ledger if tune() opened it
    if interrupted is not None:
        raise StudyInterrupted(result) from interrupted
    if error is not None:
        raise error
    return result


def _stop_trials(driver: _Driver, pool: WorkerPool) -> None:
    """Interrupt the running trials (as Ctrl-C interrupts an inline one) and take their
    outcomes: each run ends failed with the energy it spent, never killed unrecorded."""
    for event in pool.interrupt(STOP_WAIT_S):
        if isinstance(event, Done):
            driver.finish(event.outcome)
        elif isinstance(event, Died):
            driver.died(event.number, event.error)


def _caught(outcome: dict[str, Any], catch: tuple[type[BaseException], ...]) -> bool:
    exc = outcome.get("exception")
    return exc is None or (isinstance(exc, Exception) and isinstance(exc, catch))


def _run_inline(
    driver: _Driver,
    objective: Callable[..., Any],
    trial_options: dict[str, Any],
    catch: tuple[type[BaseException], ...],
) -> None:
    channel = _Direct(driver)
    while True:
        spec = driver.ask()
        if spec is None:
            return
        try:
            outcome = execute_trial(
                objective, spec, channel, trial_options,
                on_started=driver.tree.inline_trial_started,
            )  # fmt: skip
        finally:
            driver.tree.inline_trial_ended()
        driver.finish(outcome)
        if not _caught(outcome, catch):
            driver.error = outcome["exception"]
            return


def _run_pool(driver: _Driver, pool: WorkerPool, catch: tuple[type[BaseException], ...]) -> None:
    pool.start(driver.tree)
    while True:
        while pool.idle() > 0:
            spec = driver.ask()
            if spec is None:
                break
            pool.submit(spec)
        if pool.busy() == 0:
            return
        for event in pool.poll(0.05):
            if isinstance(event, Request):
                pool.answer(event, driver.handle(event.message))
            elif isinstance(event, Done):
                driver.finish(event.outcome)
                if not _caught(event.outcome, catch):
                    driver.error = event.outcome["exception"]
            elif isinstance(event, Died):
                driver.died(event.number, event.error)
        if driver.error is not None:
            return
        driver.check_budget()
        driver._show()


# -- the summary, from the ledger --------------------------------------------------------------


def _trial_summaries(
    driver: _Driver, records: dict[str, RunRecord], metrics: dict[str, list[Any]]
) -> tuple[list[TrialSummary], dict[str, float], str]:
    """Trials with ledger energy and values (the driver's own where the ledger has none),
    and the avoided energy by cause."""
    rows = []
    complete_last: list[int] = []
    for number in sorted(driver.outcomes):
        outcome = driver.outcomes[number]
        run_id = outcome.get("run_id")
        record = records.get(run_id) if run_id else None
        if record is not None:
            points = metrics.get(record.id, [])
            values = [(s, v) for s, k, v, _ in points if k == "value" and s is not None]
            energies = [(s, v) for s, k, v, _ in points if k == "energy_j" and s is not None]
            final = [v for s, k, v, _ in points if k == "objective"]
        else:  # not in the ledger (or it did not answer): its reports as the trial made them
            reports = outcome.get("reports") or []
            values = [(s, v) for s, v, _, _ in reports]
            energies = [(s, e) for s, _, e, _ in reports]
            final = []
        state = outcome["state"]
        if state == "complete":
            value: float | None = final[-1] if final else outcome.get("value")
            if values:
                complete_last.append(int(values[-1][0]))
        elif state == "pruned":
            value = values[-1][1] if values else None
        else:
            value = None
        rows.append((number, outcome, record, value, values, energies))
    plan = planned_last_step(complete_last)
    setup = setup_energy_j([[(int(st), e) for st, e in row[5]] for row in rows])
    trials = []
    avoided_by = {"pruner": 0.0, "budget": 0.0}
    for number, outcome, record, value, values, energies in rows:
        energy = record.energy_j if record else float(outcome.get("energy_j") or 0.0)
        co2e = record.co2e_g if record else float(outcome.get("co2e_g") or 0.0)
        avoided_j = avoided_g = 0.0
        if outcome["state"] == "pruned":
            declared = outcome.get("max_step")
            estimate = estimate_avoided(
                [(int(s), e) for s, e in energies], energy_j=energy,
                planned_step=float(declared) if declared is not None else plan,
                declared=declared is not None, setup_j=setup,
            )  # fmt: skip
            avoided_j = estimate.energy_j
            avoided_g = avoided_j * co2e / energy if energy > 0 else 0.0
            avoided_by[outcome.get("stopped_by") or "pruner"] += avoided_j
        trials.append(
            TrialSummary(
                number=number, run_id=outcome.get("run_id"), state=outcome["state"],
                value=value, params=dict(record.params if record else outcome.get("params") or {}),
                energy_j=energy, co2e_g=co2e,
                duration_s=record.duration_s if record else float(outcome.get("duration_s") or 0),
                last_step=int(values[-1][0]) if values else None,
                stopped_by=outcome.get("stopped_by"), error=outcome.get("error"),
                avoided_energy_j=avoided_j, avoided_co2e_g=avoided_g,
            )
        )  # fmt: skip
    method = (
        "estimated per pruned trial: its marginal energy per reported step (single report: "
        "its energy less the study's median set-up energy, per step) × the steps it had left "
        "(to its declared max step, else the median last step of complete trials)"
    )
    return trials, avoided_by, method


def _summarize(
    driver: _Driver,
    direction: str,
    executor: str,
    pool: WorkerPool | None,
    interrupted: BaseException | None,
    error: BaseException | None,
    *,
    storage: str | None = None,
) -> TuneResult:
    # bounded: a ledger that hangs or is locked leaves the driver's own figures
    records, metrics, source = read_for_summary(driver.ledger, driver.run.id, driver.outcomes)
    trials, avoided_by, method = _trial_summaries(driver, records, metrics)
    own = driver._driver_cost(fresh=True)
    trials_energy = sum(t.energy_j for t in trials)
    trials_co2e = sum(t.co2e_g for t in trials)
    spent = Spent(
        energy_j=trials_energy + own["energy_j"], co2e_g=trials_co2e + own["co2e_g"],
        duration_s=time.monotonic() - driver.t0,
    )  # fmt: skip
    if interrupted is not None:
        stop = "terminated" if isinstance(interrupted, Terminated) else "interrupted"
    elif error is not None:
        stop = "error"
    elif driver.exhausted is not None:
        stop = driver.exhausted
    elif driver.not_started is not None:
        stop = "energy_budget"
    elif driver.halted is not None:
        stop = driver.halted
    else:
        stop = "n_trials"
    sign = 1.0 if direction == "maximize" else -1.0
    complete = [t for t in trials if t.state == "complete" and t.value is not None]
    best = max(complete, key=lambda t: (sign * (t.value or 0.0), -t.energy_j), default=None)
    candidates = [
        t for t in trials
        if t.state in ("complete", "pruned") and t.value is not None and math.isfinite(t.value)
    ]  # fmt: skip
    front = pareto_front(
        candidates, value=lambda t: float(t.value or 0.0), energy_j=lambda t: t.energy_j,
        direction=direction,
    )  # fmt: skip
    counts = {"complete": 0, "pruned": 0, "fail": 0}
    for t in trials:
        counts[t.state] = counts.get(t.state, 0) + 1
    avoided_j = sum(t.avoided_energy_j for t in trials)
    avoided_g = sum(t.avoided_co2e_g for t in trials)
    prior = driver.resumed
    whole = Spent(energy_j=prior.energy_j + spent.energy_j, co2e_g=prior.co2e_g + spent.co2e_g,
                  duration_s=spent.duration_s)  # fmt: skip
    over = overshoot(
        driver.budget, whole, running_at_stop=driver.running_at_stop,
        max_report_interval_j=driver.max_interval_j,
        max_report_interval_s=driver.max_interval_s,
        would_overshoot=driver.would_overshoot, not_started=driver.not_started,
    )  # fmt: skip
    record = StudyRecord(
        study_id=driver.run.id,
        study_name=driver.study_name,
        direction=direction,
        executor=executor,
        n_workers=1 if pool is None else pool.n_workers,
        sampler=type(driver.study.sampler).__name__,
        pruner=type(driver.study.pruner).__name__,
        pruner_settings=pruner_settings(driver.study.pruner),
        energy_fidelity=driver.fidelity_record(),
        n_trials={**counts, "total": len(trials),
                  "pruned_by_budget": sum(1 for t in trials if t.stopped_by == "budget")},
        budget=driver.budget.to_dict(),
        spent={**spent.to_dict(), "trials_energy_j": trials_energy,
               "trials_co2e_g": trials_co2e, "driver_energy_j": own["energy_j"],
               "driver_co2e_g": own["co2e_g"]},
        stop_reason=stop,
        overshoot=over,
        best=None if best is None else {
            "number": best.number, "run_id": best.run_id, "value": best.value,
            "params": best.params, "energy_j": best.energy_j, "co2e_g": best.co2e_g,
        },
        best_run_id=None if best is None else best.run_id,
        pareto_run_ids=[t.run_id for t in front if t.run_id],
        pareto=[{"number": t.number, "run_id": t.run_id, "state": t.state,
                 "value": t.value, "energy_j": t.energy_j} for t in front],
        avoided_energy_j=avoided_j,
        avoided_co2e_g=avoided_g,
        avoided_by=avoided_by,
        avoided_method=method,
        trial_run_ids=[t.run_id for t in trials if t.run_id],
        other={} if storage is None else {"optuna": {
            "study_name": driver.study_name, "storage": storage,
            "session": len(prior.previous_study_run_ids) + 1,
            "previous_study_run_ids": list(prior.previous_study_run_ids),
            "trials_before": prior.trials, "orphans_failed": list(prior.orphans),
            "energy_j_before": prior.energy_j, "co2e_g_before": prior.co2e_g,
            "trials_in_study": prior.trials + len(trials),
        }},
        nodes=StudyRecord.node_totals(records.values()),
        summary_source=source,
    )  # fmt: skip
    summary = record.to_record()
    return TuneResult(
        study_id=driver.run.id, study_name=driver.study_name, direction=direction,
        trials=trials, best=best, pareto_front=front, budget=driver.budget, spent=spent,
        stop_reason=stop, overshoot=over, avoided_energy_j=avoided_j, avoided_co2e_g=avoided_g,
        summary=summary, study=driver.study,
    )  # fmt: skip
