"""wattwise in your own Ray Tune loop: each trial measured on its node, budgets in J and gCO2e.

For people who run ``ray.tune.Tuner`` themselves (any search algorithm, scheduler, cluster)::

    from ray import tune
    import wattwise.ray_tune as wr

    def train_fn(config):
        for epoch in range(20):
            loss = train_one_epoch(config["lr"])
            tune.report({"loss": loss})

    callback = wr.WattwiseCallback()
    tuner = tune.Tuner(
        wr.track_trainable(train_fn),
        param_space={"lr": tune.loguniform(1e-4, 1e-1)},
        tune_config=tune.TuneConfig(metric="loss", mode="min", num_samples=20),
        run_config=tune.RunConfig(callbacks=[callback],
                                  stop=wr.BudgetStopper(budget_kwh=0.01)),
    )
    tuner.fit()
    callback.spent(), callback.by_node()

* :func:`track_trainable` wraps a function trainable. Inside the trial's worker, on the
  node that runs it, it makes the trial a run of kind ``trial`` (energy attributed to that
  worker's process), records where it ran (Ray node and job ids, Tune's trial id, in
  ``record["extra"]["ray"]``, read with :class:`wattwise.tuning.RayPlacement`), and adds the
  energy so far to every result the trial reports (:data:`ENERGY_KEY`, :data:`CO2E_KEY`, ...).
* :class:`WattwiseCallback` (a ``ray.tune.Callback``, in the driver) keeps the books: each
  trial's energy from its results, then from the ledger once it ends; totals and totals per
  node; and, when the experiment ends, a study run (kind ``study``) whose record holds a
  :class:`wattwise.tuning.StudyRecord`.
* :class:`BudgetStopper` (a ``ray.tune.Stopper``) stops the experiment once the trials'
  energy or carbon reaches a budget.

Ray is imported only when these are used: ``import wattwise.ray_tune`` stays light, and
the two Ray Tune classes load on first access. See ``docs/how-to/ray-tune.md``.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import logging
import math
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from wattwise._ray_common import (
    CO2E_KEY,
    ENERGY_KEY,
    NODE_KEY,
    RUN_KEY,
    STUDY_KEY,
    ledger_url,
    study_id_for,
)
from wattwise.exceptions import InvalidParameterError

if TYPE_CHECKING:
    from wattwise._ray_tune import BudgetStopper, TrialEnergy, WattwiseCallback
    from wattwise.store import BaseRunStore
    from wattwise.tracking import Run

__all__ = [
    "CO2E_KEY",
    "ENERGY_KEY",
    "NODE_KEY",
    "RUN_KEY",
    "STUDY_KEY",
    "BudgetStopper",
    "TrialEnergy",
    "WattwiseCallback",
    "study_id_for",
    "track_trainable",
]

logger = logging.getLogger("wattwise")

#: Keyword arguments of :func:`track_trainable` passed to each trial's run.
RUN_OPTIONS = frozenset({"region", "meters", "interval_s", "flush_s", "pue", "emit_warnings"})


def track_trainable(
    trainable: Callable[..., Any],
    *,
    store: BaseRunStore | str | None = None,
    name: str | None = None,
    tags: Iterable[str] = (),
    **run_options: Any,
) -> Callable[..., Any]:
    """Wrap a Ray Tune function trainable so that each trial is measured where it runs.

    In the trial's worker the wrapper opens a run (kind ``trial``, its study run named by
    :func:`study_id_for`), records the Ray node, job and trial ids in
    ``record["extra"]["ray"]``, and adds to each result the trial reports (through
    ``ray.tune.report``) its energy and carbon so far (:data:`ENERGY_KEY`,
    :data:`CO2E_KEY`), its run id and node id. The trial's outcome is unchanged: its
    results keep every key it reported, its exceptions pass through, and if wattwise cannot
    measure (a meter, the ledger), the trial runs unmeasured with a warning in the log.

    Args:
        trainable: A function trainable, ``fn(config)`` (also through
            ``tune.with_parameters``). Class trainables are not supported.
        store: The ledger (path, URL or store); default the project's, resolved here in
            the driver. Every node must reach it (a shared path, or PostgreSQL).
        name: Name of each trial's run (default: Ray Tune's trial name).
        tags: Tags for each trial's run (``ray-tune`` is added).
        **run_options: For each trial's run: ``region``, ``meters``, ``interval_s``,
            ``flush_s``, ``pue``, ``emit_warnings``.

    Returns:
        The trainable to give ``tune.Tuner`` (or ``tune.with_resources``...).

    Raises:
        InvalidParameterError: ``trainable`` is not a function, an option is unknown, or
            ``store`` is a ``memory://`` ledger.
    """
    owner = "wattwise.ray_tune.track_trainable"
    if inspect.isclass(trainable) or not callable(trainable):
        msg = (
            f"{owner} wraps a function trainable, fn(config); got {trainable!r}. Wrap the "
            "function that trains (class trainables are not supported)."
        )
        raise InvalidParameterError(msg)
    unknown = sorted(set(run_options) - RUN_OPTIONS)
    if unknown:
        msg = (
            f"{owner} got unknown options {', '.join(unknown)}; the run options are "
            f"{', '.join(sorted(RUN_OPTIONS))} (and store, name, tags)."
        )
        raise InvalidParameterError(msg)
    settings = {
        "store": ledger_url(store, owner),
        "name": name,
        "tags": [*(str(t) for t in tags), "ray-tune"],
        "options": dict(run_options),
    }

    @functools.wraps(trainable)
    def tracked(config: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        return run_trial(trainable, config, args, kwargs, settings)

    return tracked


# -- in the trial's worker ---------------------------------------------------------------------


def run_trial(
    trainable: Callable[..., Any],
    config: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    settings: Mapping[str, Any],
) -> Any:
    """Run one trial of ``trainable`` as a run, in the worker (see :func:`track_trainable`)."""
    placement = _placement()
    run = _start_run(config, placement, settings)
    if run is None:
        return trainable(config, *args, **kwargs)
    trial = _TrialRun(run, placement, config)
    hook = _SessionHook(trial)
    try:
        result = trainable(config, *args, **kwargs)
    except SystemExit as err:  # Ray Tune stops a trial by raising this in its report()
        hook.remove()
        trial.end("stopped" if err.code in (None, 0) else "raised", err)
        raise
    except BaseException as err:
        hook.remove()
        trial.end("raised", err)
        raise
    hook.remove()
    trial.end("returned", None)
    return result


class _TrialRun:
    """A trial's run, ended once: by the trial's thread, or by Ray Tune stopping the trial."""

    def __init__(self, run: Run, placement: Mapping[str, Any], config: Any) -> None:
        self.run = run
        self.placement = dict(placement)
        self.config = config
        self.reports = 0
        self._lock = threading.Lock()
        self._ended = False

    def end(self, how: str, failure: BaseException | None) -> None:
        """Record how the trial ended and finish its run; never raises into the trial.

        ``how``: ``returned``, ``stopped`` (by Ray Tune) or ``raised``.
        """
        from wattwise.tuning import TrialRecord

        with self._lock:
            if self._ended:
                return
            self._ended = True
            if how == "stopped":
                failure = None
            state = {"returned": "complete", "stopped": "pruned"}.get(how, "fail")
            error = None if failure is None else f"{type(failure).__name__}: {failure}"[:500]
            try:
                record = TrialRecord(
                    state=state, n_reports=self.reports,
                    last_step=self.reports - 1 if self.reports else None,
                    stopped_by="ray_tune" if how == "stopped" else None, error=error,
                    params=_params(self.config),
                )  # fmt: skip
                self.run.annotate(TrialRecord.KEY, record.to_record())
                self.run.annotate("ray", {**self.placement, "ended": how})
                if failure is None:
                    self.run.__exit__(None, None, None)
                else:
                    self.run.__exit__(type(failure), failure, failure.__traceback__)
            except Exception:
                logger.warning("wattwise: could not record the end of a trial's run",
                               exc_info=True)  # fmt: skip


def _placement() -> dict[str, Any]:
    """The Ray node, job and Tune trial this worker runs (what can be read, never raising)."""
    out: dict[str, Any] = {}
    try:
        context = _ray("ray").get_runtime_context()
        out.update(node_id=context.get_node_id(), job_id=context.get_job_id())
    except Exception:
        logger.debug("wattwise: the Ray runtime context is not readable here", exc_info=True)
    try:
        tune_context = _ray("ray.tune").get_context()
        out.update(
            trial_id=tune_context.get_trial_id(),
            trial_name=tune_context.get_trial_name(),
            experiment=tune_context.get_experiment_name(),
        )
    except Exception:
        logger.debug("wattwise: Ray Tune's trial context is not readable here", exc_info=True)
    found = {k: v for k, v in out.items() if isinstance(v, str) and v}
    if found.get("job_id") and found.get("experiment"):
        found["study_id"] = study_id_for(found["job_id"], found["experiment"])
    return found


def _ray(module: str) -> Any:
    """A Ray module, imported by name (type checkers of wattwise do not walk Ray)."""
    return importlib.import_module(module)


def _params(config: Any) -> dict[str, Any]:
    """The trial's configuration as run parameters (values a ledger can hold as they are)."""
    if not isinstance(config, Mapping):
        return {}
    plain = (str, int, float, bool, type(None))
    return {str(k): v if isinstance(v, plain) else repr(v) for k, v in config.items()}


def _start_run(
    config: Any, placement: Mapping[str, Any], settings: Mapping[str, Any]
) -> Run | None:
    """The trial's run, started; None (and a warning in the log) when it cannot start."""
    from wattwise.tracking import Run

    study_id = placement.get("study_id")
    name = settings.get("name") or placement.get("trial_name") or "ray-tune-trial"
    try:
        run = Run(
            str(name), kind="trial", study_id=study_id, config=_params(config),
            tags=list(settings.get("tags") or ()), store=settings.get("store"),
            **dict(settings.get("options") or {}),
        )  # fmt: skip
        run.__enter__()
        run.annotate("ray", dict(placement))
    except Exception as err:
        logger.warning(
            "wattwise: this Ray Tune trial runs unmeasured: its run could not start (%s: %s).",
            type(err).__name__, err,
        )  # fmt: skip
        return None
    return run


class _SessionHook:
    """Hooks into the trial's Ray Tune session for as long as the trial runs.

    Ray Tune's ``tune.report`` (and ``ray.train.report`` inside Tune) hand each result to
    the trial's session object: its ``report`` is wrapped to add the trial's energy (the
    trial's own keys are kept as they are). When Tune stops a trial (a scheduler, a
    stopper), it calls the session's ``finish`` from the actor's main thread and then ends
    the actor, possibly before the trial's thread runs again: ``finish`` is wrapped to end
    the trial's run first, so that its energy reaches the ledger. Both are restored by
    :meth:`remove` (and when Tune stops the trial), on this trial's session only.
    """

    def __init__(self, trial: _TrialRun) -> None:
        self._trial = trial
        run, placement = trial.run, trial.placement
        self._extra = {NODE_KEY: placement.get("node_id"), RUN_KEY: run.id}
        if placement.get("study_id"):
            self._extra[STUDY_KEY] = placement["study_id"]
        self._session: Any = None
        self._wrappers: dict[str, Any] = {}
        try:  # Ray's own module: the session that tune.report() hands results to
            session = _ray("ray.train._internal.session").get_session()
        except Exception:
            session = None
        report, finish = getattr(session, "report", None), getattr(session, "finish", None)
        if session is None or not callable(report) or not callable(finish):
            logger.warning(
                "wattwise: Ray Tune's session is not reachable in this version of Ray; this "
                "trial's results carry no energy (its run in the ledger has it)."
            )
            return

        def report_with_energy(metrics: Any, *args: Any, **kwargs: Any) -> Any:
            return report(self._with_energy(metrics), *args, **kwargs)

        def finish_run_first(*args: Any, **kwargs: Any) -> Any:
            self.remove()
            trial.end("stopped", None)  # nothing if the trial's thread ended it already
            return finish(*args, **kwargs)

        self._session = session
        self._wrappers = {"report": report_with_energy, "finish": finish_run_first}
        try:
            for name, wrapper in self._wrappers.items():
                setattr(session, name, wrapper)
        except Exception:  # a session that takes no attributes: leave it as it is
            self.remove()
            logger.warning("wattwise: Ray Tune's session cannot be hooked; this trial's "
                           "results carry no energy (its run in the ledger has it).")  # fmt: skip

    def _with_energy(self, metrics: Any) -> Any:
        if not isinstance(metrics, Mapping):
            return metrics
        run = self._trial.run
        try:
            snap = run.snapshot()
        except Exception:
            logger.debug("wattwise: could not read this trial's energy", exc_info=True)
            return metrics
        step = self._trial.reports
        self._trial.reports += 1
        try:  # the result's numbers, into the run's metrics at this report's index
            values = {
                str(k): float(v) for k, v in metrics.items()
                if isinstance(v, (int, float)) and not isinstance(v, bool)
                and math.isfinite(float(v)) and "/" not in str(k) and k != "step"
            }  # fmt: skip
            run.log(step=step, **{**values, "energy_j": snap["energy_j"]})
        except Exception:
            logger.debug("wattwise: could not log this result into the run", exc_info=True)
        added = {ENERGY_KEY: snap["energy_j"], CO2E_KEY: snap["co2e_g"], **self._extra}
        return {**metrics, **{k: v for k, v in added.items() if k not in metrics}}

    def remove(self) -> None:
        session, self._session = self._session, None
        if session is None:
            return
        own = getattr(session, "__dict__", {})
        for name, wrapper in self._wrappers.items():
            if own.get(name) is wrapper:
                delattr(session, name)


def __getattr__(name: str) -> Any:
    """``WattwiseCallback``, ``BudgetStopper``, ``TrialEnergy``: loaded (with Ray) on use."""
    if name in ("WattwiseCallback", "BudgetStopper", "TrialEnergy"):
        try:
            from wattwise import _ray_tune
        except ImportError as err:
            msg = (
                f"wattwise.ray_tune.{name} needs Ray Tune, which cannot be imported ({err}). "
                "Install it with: pip install 'wattwise[ray]' 'ray[tune]'."
            )
            raise ImportError(msg) from err
        value = getattr(_ray_tune, name)
        globals()[name] = value
        return value
    msg = f"module 'wattwise.ray_tune' has no attribute {name!r}"
    raise AttributeError(msg)
