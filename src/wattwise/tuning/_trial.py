"""The trial an objective receives, and how one trial is run and metered where it runs.

:func:`execute_trial` is the same code in every executor: in the driver's process
(inline), in a worker process, or in a Ray actor. It creates the trial's run, so the trial
is metered on the machine and process tree that does the work, and it talks to the study
driver only through a :class:`Channel` (a direct call, a pipe or a Ray mailbox).
"""

from __future__ import annotations

import math
import operator
import os
import pickle
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from wattwise.exceptions import InvalidParameterError, SearchError, TrialStateError
from wattwise.tracking import Run, RunState
from wattwise.tuning._records import TrialRecord
from wattwise.tuning._tree import subtree_cpu_s


class Channel(Protocol):
    """How a trial talks to the study driver: one request, one reply."""

    def call(self, message: dict[str, Any]) -> Any:
        """Send ``message`` to the driver and return its reply."""


class BudgetExhaustedError(SearchError):
    """Raised by :meth:`Trial.report` once a budget of the study is spent.

    The trial is recorded as pruned, with ``stopped_by: "budget"``. Let it propagate out
    of the objective (like ``optuna.TrialPruned``); do not swallow it.
    """


class Trial:
    """The trial an objective receives: Optuna's trial interface, metered.

    ``suggest_*``, ``report``, ``should_prune``, ``set_user_attr``, ``params`` and
    ``number`` behave as in Optuna (the driver's Optuna study answers them). In addition:

    * ``report()`` logs the value and the energy spent so far into the trial's run, and
      raises :class:`BudgetExhaustedError` once a budget of the study is spent;
    * ``run`` is the trial's :class:`wattwise.Run` (``trial.run.log(loss=...)``);
    * ``energy_j`` is what the trial has cost so far, in joules;
    * ``set_max_step(step)`` declares the step the trial ends at if it is not pruned,
      which sharpens the estimate of the energy pruning avoided.

    A trial lives as long as the objective call that received it: once that call has
    returned (or raised), ``suggest_*``, ``report``, ``set_user_attr`` and ``set_max_step``
    raise :class:`~wattwise.exceptions.TrialStateError` instead of changing a finished
    trial (``params``, ``user_attrs`` and ``number`` stay readable).
    """

    def __init__(
        self,
        number: int,
        run: Run,
        channel: Channel,
        *,
        params: Mapping[str, Any] | None = None,
    ) -> None:
        self.number = number
        self.run = run
        self._channel = channel
        self._params: dict[str, Any] = dict(params or {})
        self._user_attrs: dict[str, Any] = {}
        self._prune = False
        self._stop: str | None = None
        self.reports: list[tuple[int, float, float, float]] = []
        self.max_step: int | None = None
        self._last_report_t = time.monotonic()
        self._last_report_j = 0.0
        self.max_interval_j = 0.0
        self.max_interval_s = 0.0
        self._ended: str | None = None  # the state it ended in, once the objective returned

    def _check_running(self, method: str) -> None:
        if self._ended is not None:
            msg = (
                f"Trial {self.number} has ended ({self._ended}); Trial.{method} cannot change "
                "it. Use a trial only inside the objective call that received it."
            )
            raise TrialStateError(msg)

    # -- Optuna's interface ---------------------------------------------------------------

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        self._check_running(method)
        reply = self._channel.call(
            {"op": "call", "number": self.number, "method": method, "args": args,
             "kwargs": kwargs}
        )  # fmt: skip
        if "error" in reply:
            raise reply["error"]
        return reply["value"]

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None,
        log: bool = False,
    ) -> float:  # fmt: skip
        """A float parameter in [low, high] (see ``optuna.Trial.suggest_float``)."""
        if name not in self._params:
            self._params[name] = self._call("suggest_float", name, low, high, step=step, log=log)
        return float(self._params[name])

    def suggest_int(
        self, name: str, low: int, high: int, *, step: int = 1, log: bool = False
    ) -> int:
        """An int parameter in [low, high] (see ``optuna.Trial.suggest_int``)."""
        if name not in self._params:
            self._params[name] = self._call("suggest_int", name, low, high, step=step, log=log)
        return int(self._params[name])

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        """One of ``choices`` (see ``optuna.Trial.suggest_categorical``)."""
        if name not in self._params:
            self._params[name] = self._call("suggest_categorical", name, list(choices))
        return self._params[name]

    def report(self, value: float, step: int) -> None:
        """Report an intermediate value at ``step`` (an epoch index, counted from 0).

        The value and the trial's energy so far are logged into its run as metrics
        ``value`` and ``energy_j`` at ``step``. The driver's pruner sees the value at
        ``step``, or at the energy spent when the study uses energy as fidelity.

        Raises:
            BudgetExhaustedError: A budget of the study is spent; let it end the objective.
            InvalidParameterError: ``step`` is not an int >= 0.
            TrialStateError: The trial has ended (its objective call returned).
        """
        self._check_running("report")
        number = float(value)
        try:
            index = -1 if isinstance(step, bool) else operator.index(step)
        except TypeError:
            index = -1
        if index < 0:
            msg = (
                f"The 'step' parameter of Trial.report must be an int >= 0 (an epoch index). "
                f"Got {step!r} instead."
            )
            raise InvalidParameterError(msg)
        step = index
        snap = self.run.snapshot()
        now = time.monotonic()
        self.max_interval_j = max(self.max_interval_j, snap["energy_j"] - self._last_report_j)
        self.max_interval_s = max(self.max_interval_s, now - self._last_report_t)
        self._last_report_j, self._last_report_t = snap["energy_j"], now
        self.run.log(step=step, value=number, energy_j=snap["energy_j"])
        self.reports.append((step, number, snap["energy_j"], snap["co2e_g"]))
        reply = self._channel.call(
            {"op": "report", "number": self.number, "value": number, "step": step,
             "energy_j": snap["energy_j"], "co2e_g": snap["co2e_g"], "max_step": self.max_step}
        )  # fmt: skip
        if "error" in reply:
            raise reply["error"]
        self._prune = bool(reply["prune"])
        if reply.get("overshoot") and not reply.get("stop"):
            self._stop = "energy_budget"
            msg = f"Trial {self.number} stopped: {reply['overshoot']}."
            raise BudgetExhaustedError(msg)
        if reply.get("stop"):
            self._stop = str(reply["stop"])
            msg = (
                f"Trial {self.number} stopped: the study's {self._stop.replace('_', ' ')} is "
                "spent."
            )
            raise BudgetExhaustedError(msg)

    def should_prune(self) -> bool:
        """Whether the pruner (or a spent budget) says to stop, after the last report."""
        return self._prune or self._stop is not None

    def set_user_attr(self, key: str, value: Any) -> None:
        """Attach a value to the Optuna trial (and to the run's trial record)."""
        self._call("set_user_attr", key, value)
        self._user_attrs[key] = value

    def set_max_step(self, step: int) -> None:
        """Declare the last step this trial reports if it runs to its end (e.g. epochs − 1)."""
        self._check_running("set_max_step")
        self.max_step = int(step)

    @property
    def params(self) -> dict[str, Any]:
        """Parameters suggested so far."""
        return dict(self._params)

    @property
    def user_attrs(self) -> dict[str, Any]:
        """User attributes set so far."""
        return dict(self._user_attrs)

    @property
    def energy_j(self) -> float:
        """Energy the trial has cost so far, in joules."""
        return self.run.snapshot()["energy_j"]

    def _finish_interval(self) -> None:
        """Account the last stretch, from the last report to the end of the objective."""
        snap = self.run.snapshot()
        self.max_interval_j = max(self.max_interval_j, snap["energy_j"] - self._last_report_j)
        self.max_interval_s = max(self.max_interval_s, time.monotonic() - self._last_report_t)


def portable_error(err: BaseException) -> BaseException:
    """``err`` if it survives pickling, else a SearchError carrying its text."""
    try:
        pickle.loads(pickle.dumps(err))
    except Exception:
        msg = f"{type(err).__name__}: {err}"
        return SearchError(msg)
    return err


def execute_trial(
    objective: Callable[[Trial], Any],
    spec: Mapping[str, Any],
    channel: Channel,
    run_options: Mapping[str, Any],
    *,
    on_started: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Run one trial as a run of its own, wherever this is called.

    Args:
        objective: ``objective(trial) -> float``.
        spec: ``number``, ``study_id``, ``study_name``, ``params`` (pre-sampled), ``tags``.
        channel: The way to the driver.
        run_options: Keyword arguments for :class:`wattwise.Run` (store, meters, ...).
        on_started: Called once the run has started (the inline executor freezes the
            driver's figure there).

    Returns:
        The outcome: ``number``, ``run_id``, ``state`` (complete|pruned|fail), ``value``,
        ``stopped_by``, ``error`` (text), ``exception``, ``energy_j``, ``co2e_g``,
        ``duration_s``, ``reports`` ``[(step, value, energy_j, co2e_g)]``, ``max_step``,
        ``cpu_start_s``/``cpu_end_s`` (CPU seconds of this process tree) and report intervals.
    """
    import optuna

    number = int(spec["number"])
    run = Run(
        f"{spec['study_name']}#{number}", kind="trial", study_id=spec["study_id"],
        config=dict(spec.get("params") or {}), tags=list(spec.get("tags") or ()),
        **dict(run_options),
    )  # fmt: skip
    trial = Trial(number, run, channel, params=spec.get("params"))
    outcome: dict[str, Any] = {
        "number": number, "run_id": run.id, "state": "fail", "value": None,
        "stopped_by": None, "error": None, "exception": None, "pid": os.getpid(),
    }  # fmt: skip

    def annotate(state: str, value: float | None, error: str | None, stopped_by: str | None,
                 ) -> None:  # fmt: skip
        last = trial.reports[-1] if trial.reports else None
        run.set_params(**trial.params)
        record = TrialRecord(
            number=number, state=state, value=value, last_step=last[0] if last else None,
            last_value=last[1] if last else None, n_reports=len(trial.reports),
            max_step=trial.max_step, stopped_by=stopped_by, error=error, params=trial.params,
            user_attrs=trial.user_attrs,
        )  # fmt: skip
        run.annotate(TrialRecord.KEY, record.to_record())

    cpu_start = 0.0
    try:
        with run:
            cpu_start = subtree_cpu_s()
            if on_started is not None:
                on_started()
            channel.call(
                {"op": "started", "number": number, "run_id": run.id, "pid": os.getpid(),
                 "cpu_s": cpu_start}
            )  # fmt: skip
            try:
                raw = objective(trial)
            except BudgetExhaustedError as err:
                outcome.update(state="pruned", stopped_by="budget", error=str(err))
            except optuna.TrialPruned:
                outcome.update(state="pruned", stopped_by="pruner")
            except BaseException as err:
                text = f"{type(err).__name__}: {err}"[:500]
                outcome.update(error=text, exception=portable_error(err))
                trial._finish_interval()
                annotate("fail", None, text, None)
                raise
            else:
                value = _as_value(raw)
                if value is None:
                    text = (
                        f"The objective returned {raw!r}; it must return a finite number "
                        "(the value to optimise)."
                    )
                    outcome.update(error=text)  # like Optuna: a failed trial, not an error
                    trial._finish_interval()
                    annotate("fail", None, text, None)
                    raise SearchError(text)
                outcome.update(state="complete", value=value)
                run.log(objective=value)
            trial._finish_interval()
            annotate(outcome["state"], outcome["value"], outcome["error"], outcome["stopped_by"])
    except Exception as err:  # the run is recorded as failed; the outcome says why
        if outcome["error"] is None:  # wattwise itself failed (the ledger, a meter)
            outcome.update(error=f"{type(err).__name__}: {err}"[:500],
                           exception=portable_error(err))  # fmt: skip
    except BaseException as err:  # KeyboardInterrupt, SystemExit: the study stops
        outcome["exception"] = err
    trial._ended = outcome["state"]
    energy = co2e = duration = energy_band = co2e_band = 0.0
    if run.state is RunState.ENDED:
        energy, co2e, duration = run.result.energy_j, run.result.co2e_g, run.result.duration_s
        energy_band, co2e_band = run.result.energy_band_j, run.result.co2e_band_g
    last = trial.reports[-1] if trial.reports else None
    outcome.update(
        energy_j=energy, co2e_g=co2e, duration_s=duration, energy_band_j=energy_band,
        co2e_band_g=co2e_band,
        reports=list(trial.reports), max_step=trial.max_step, params=trial.params,
        last_value=last[1] if last else None, cpu_start_s=cpu_start,
        cpu_end_s=subtree_cpu_s(), max_interval_j=trial.max_interval_j,
        max_interval_s=trial.max_interval_s,
    )  # fmt: skip
    return outcome


def _as_value(raw: Any) -> float | None:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None
