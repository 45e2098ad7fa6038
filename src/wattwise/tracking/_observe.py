"""Run observers: one interface for every hook on a run (Prometheus, MLflow, yours).

An observer is a :class:`RunObserver`: it overrides the events it wants (each does nothing
by default). A plain callable ``observer(sample)`` is an observer of samples only. Register
one with :func:`add_run_observer`; it then hears every run of this process:

============================  =================================  ==========================
event                         when                               on which thread
============================  =================================  ==========================
``started(run)``              the run has started (measuring,    the thread that started it
                              in the ledger, ``run.id`` set)
``logged(run, step, m)``      the run logged metrics ``m`` at    the thread that logged
                              ``step`` (``run.log``, callbacks)  (the user's)
``sampled(sample)``           after each sample of the meters    the run's sampler thread,
                              (every ``interval_s``), with       outside the run's lock
                              ``status == "running"``
``sampled(sample)``           once more at the end: the final    the thread that ends the run
                              totals and ``status``              (or the exit hook)
``ended(run, result)``        last: the run's :class:`RunResult` the thread that ends the run
                              (use ``result``; ``run.result``    (or the exit hook)
                              is set just after)
``closing()``                 the process exits, after its       the exit hook
                              open runs have ended
============================  =================================  ==========================

The contract: an observer watches, it never harms the job.

* **Never block.** Each event must return at once: hand slow work (a file, a network
  write) to a thread of your own. Reading the run (``run.snapshot()``, ``run.record``) is
  fine; ``closing()`` may wait, briefly (a few seconds at most), for work it queued, and so
  may ``ended()`` for a trial in a worker process, where no user code waits any more.
* **Never raise into the run.** An exception from an event is caught, said once in the
  run's warnings, and the observer is dropped: it hears nothing more, of any run. The run
  goes on (also with ``strict=True``: strict is about the measurement, not its watchers).
* **Never change the run**: no ``log``, ``finish`` or ``annotate`` from an event.

Built-in observers are loaded only where what they serve is in use (``import wattwise``
stays light): ``wattwise.prometheus`` when ``WATTWISE_PROMETHEUS_PORT`` or
``WATTWISE_PROMETHEUS_TEXTFILE`` is set or ``wattwise.prometheus.enable()`` was called;
:mod:`wattwise.integrations.mlflow` when this process has imported ``mlflow`` already, or
with ``WATTWISE_MLFLOW=1`` (``0`` turns it off). A built-in observer may also
:meth:`~RunObserver.hand_off` what a run's work in another process needs (a study's
trials in worker processes: :func:`hand_off_observers` in the driver,
:func:`adopt_observers` in the worker), never a secret.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from wattwise.exceptions import WattwiseWarning

if TYPE_CHECKING:
    from wattwise.tracking._measuring import MeasuringMixin
    from wattwise.tracking._result import RunResult
    from wattwise.tracking._run import Run

logger = logging.getLogger("wattwise")

#: ``(kind, text)``: how a fault is said once (the run's warnings).
Warn = Callable[[str, str], None]

_PROMETHEUS_ENVS = ("WATTWISE_PROMETHEUS_PORT", "WATTWISE_PROMETHEUS_TEXTFILE")


@dataclasses.dataclass(frozen=True)
class LiveComponent:
    """One component's share of a run so far.

    Attributes:
        component: ``cpu``, ``gpu``, ``dram``, ``npu``...
        energy_j: Energy attributed to the run (IT energy, before PUE).
        band_j: Its uncertainty band (±), None when the meter gives none.
        co2e_g: Operational carbon of that energy (PUE and grid intensity applied).
        method: ``measured`` or ``estimated``... as the ledger labels it.
        meter: The meter that measures it now.
    """

    component: str
    energy_j: float
    band_j: float | None
    co2e_g: float
    method: str
    meter: str


@dataclasses.dataclass(frozen=True)
class LiveSample:
    """What one run has cost so far, as an observer hears it.

    Attributes:
        run_id: The run's id.
        name: The run's name.
        kind: ``python``, ``command``, ``trial``...
        host: The host id (``WATTWISE_HOST_ID``, else the host name).
        job: The job id when the run is part of a job (SLURM, torchrun), else None.
        region: The grid zone the carbon is computed for.
        status: ``running``, or the final status once the run has ended.
        at: Wall-clock time the meters were read for this sample (seconds since the epoch).
        duration_s: Seconds since the run started.
        energy_j: Energy attributed to the run, all components (IT energy).
        energy_band_j: Its uncertainty band (±).
        co2e_g: Operational carbon so far.
        intensity_g_per_kwh: The grid intensity applied.
        pue: The PUE applied.
        components: Per component.
    """

    run_id: str
    name: str
    kind: str
    host: str
    job: str | None
    region: str
    status: str
    at: float
    duration_s: float
    energy_j: float
    energy_band_j: float
    co2e_g: float
    intensity_g_per_kwh: float
    pue: float
    components: tuple[LiveComponent, ...]


class RunObserver:
    """Told of what every run of this process does (see the module docstring: the events,
    their threads, and what an observer must never do). Override the events you want."""

    def started(self, run: Run) -> None:
        """``run`` has started."""

    def logged(self, run: Run, step: int | None, metrics: Mapping[str, float]) -> None:
        """``run`` logged ``metrics`` at ``step`` (None: no step)."""

    def sampled(self, sample: LiveSample) -> None:
        """A run's cost so far (``status`` ``running``), or its final totals and status."""

    def ended(self, run: Run, result: RunResult) -> None:
        """``run`` has ended with ``result`` (after its final :meth:`sampled`)."""

    def closing(self) -> None:
        """The process is exiting, its open runs ended: finish queued work, briefly."""

    def hand_off(self, run_id: str) -> Mapping[str, Any] | None:
        """What run ``run_id``'s work in another process needs to be observed as it is
        here (a study's trials in worker processes): small, picklable, never a secret.
        Only built-in observers are handed off (a worker makes them the same way)."""
        return None

    def adopt(self, handed: Mapping[str, Any]) -> None:
        """In a worker process: take what :meth:`hand_off` gave in the driver."""


class _SampleCallback(RunObserver):
    """A plain callable ``observer(sample)``: an observer of samples only."""

    def __init__(self, fn: Callable[[LiveSample], None]) -> None:
        self.fn = fn

    def sampled(self, sample: LiveSample) -> None:
        self.fn(sample)

    def __repr__(self) -> str:
        return repr(self.fn)


#: What :func:`add_run_observer` takes: a :class:`RunObserver`, or a callable of samples.
AnyObserver = RunObserver | Callable[[LiveSample], None]


def _mlflow_wanted() -> bool:
    flag = os.environ.get("WATTWISE_MLFLOW", "").strip()
    if flag == "0":
        return False
    return flag == "1" or "mlflow" in sys.modules or "mlflow" in _adopted


#: Built-in observers, loaded on use: (name, module, whether a run starting now wants it).
#: The module's ``observer()`` gives the (one) observer.
BUILT_IN: tuple[tuple[str, str, Callable[[], bool]], ...] = (
    ("mlflow", "wattwise.integrations.mlflow", _mlflow_wanted),
)

_lock = threading.Lock()
_observers: list[RunObserver] = []
_built: dict[str, RunObserver] = {}  # built-in observers loaded, by name
_dropped: set[str] = set()  # built-in observers that raised: never loaded again
_adopted: dict[str, Mapping[str, Any]] = {}
_env_tried: tuple[str, ...] | None = None


def add_run_observer(observer: AnyObserver) -> Callable[[], None]:
    """Tell ``observer`` of every run of this process (a :class:`RunObserver`, or a
    callable of :class:`LiveSample`, told of samples only).

    Returns:
        A function that removes it again.
    """
    entry = observer if isinstance(observer, RunObserver) else _SampleCallback(observer)
    with _lock:
        _observers.append(entry)

    def remove() -> None:
        remove_run_observer(observer)

    return remove


def remove_run_observer(observer: AnyObserver) -> None:
    """Stop telling ``observer`` (no error when it was not registered)."""
    with _lock:
        for entry in list(_observers):
            if entry is observer or (isinstance(entry, _SampleCallback)
                                     and entry.fn == observer):  # fmt: skip
                _observers.remove(entry)
                return


def _from_environment(warn: Warn) -> None:
    """Set up the observers the environment asks for (once per distinct setting)."""
    global _env_tried
    wanted = tuple(os.environ.get(name, "").strip() for name in _PROMETHEUS_ENVS)
    if wanted == _env_tried:
        return
    _env_tried = wanted
    if not any(wanted):  # no longer asked for: what the environment set up stops
        module = sys.modules.get("wattwise.prometheus")
        if module is not None:
            module.disable(only_from_environment=True)
        return
    # by name, as the other built-in observers (BUILT_IN): tracking imports no integration
    prometheus = importlib.import_module("wattwise.prometheus")
    prometheus.enable_from_environment(warn=warn)


def _load(name: str, module: str) -> RunObserver | None:
    with _lock:
        if name in _dropped:
            return None
        found = _built.get(name)
    if found is None:
        found = importlib.import_module(module).observer()
        with _lock:
            found = _built.setdefault(name, found)
    return found


def _active(warn: Warn, *, starting: bool = False) -> list[RunObserver]:
    """The observers to tell now (cheap when there are none: a few dictionary lookups).

    ``starting``: a run starts, so the built-in observers it wants are loaded (and only
    those are told of its start).
    """
    if any(os.environ.get(name) for name in _PROMETHEUS_ENVS) or _env_tried:
        _from_environment(warn)
    with _lock:
        found = list(_observers)
        built = {n: o for n, o in _built.items() if n not in _dropped}
    module = sys.modules.get("wattwise.prometheus")
    if module is not None:
        exporter = module.active_exporter()
        if exporter is not None:
            found.append(exporter)
    if not starting:
        return found + list(built.values())
    for name, path, wanted in BUILT_IN:
        if not wanted():
            continue
        try:
            observer = _load(name, path)
        except Exception as err:  # a broken integration never harms the job: said once
            with _lock:
                _dropped.add(name)
            warn(f"observer:{name}", f"the {name} observer could not be loaded and is off "
                 f"(the run goes on): {type(err).__name__}: {err}")  # fmt: skip
            continue
        if observer is not None:
            found.append(observer)
    return found


def _drop(observer: RunObserver) -> None:
    """An observer raised: it hears nothing more, of any run."""
    remove_run_observer(observer)
    with _lock:
        for name, built in _built.items():
            if built is observer:
                _dropped.add(name)
    module = sys.modules.get("wattwise.prometheus")
    if module is not None and observer is module.active_exporter():
        module.disable()


def _tell(observers: list[RunObserver], event: str, warn: Warn, *args: Any) -> None:
    """Call ``event`` on each observer; one that raises is dropped and said once."""
    for observer in observers:
        try:
            getattr(observer, event)(*args)
        except Exception as err:
            _drop(observer)
            warn(f"observer:{id(observer)}", f"run observer {observer!r} failed and was "
                 f"dropped, the run goes on ({event}: {type(err).__name__}: {err})")  # fmt: skip


def _warner(run: MeasuringMixin) -> Warn:
    def warn(kind: str, text: str) -> None:
        run._warn_once(kind, text, WattwiseWarning)

    return warn


def _safely(warn: Warn, starting: bool = False) -> list[RunObserver]:
    try:
        return _active(warn, starting=starting)
    except Exception as err:  # a broken setting never harms the job: said once
        warn("observers", f"live metrics are off: {err}")
        return []


def run_started(run: Run) -> None:
    """Tell the observers ``run`` has started (the built-in ones it wants are loaded)."""
    warn = _warner(run)
    _tell(_safely(warn, starting=True), "started", warn, run)


def run_logged(run: Run, step: int | None, metrics: Mapping[str, float]) -> None:
    """Tell the observers ``run`` logged ``metrics`` at ``step``."""
    warn = _warner(run)
    _tell(_safely(warn), "logged", warn, run, step, metrics)


def run_ended(run: MeasuringMixin, result: RunResult) -> None:
    """Tell the observers ``run`` has ended with ``result``."""
    warn = _warner(run)
    _tell(_safely(warn), "ended", warn, run, result)


def process_exiting() -> None:
    """At exit, after the open runs have ended: each observer's ``closing()``."""
    for observer in _safely(lambda kind, text: logger.warning("wattwise: %s", text)):
        try:
            observer.closing()
        except Exception as err:  # at exit there is nobody left to tell but the log
            logger.warning("wattwise: run observer %r failed at exit: %s", observer, err)


def hand_off_observers(run_id: str) -> dict[str, Any]:
    """What the built-in observers of run ``run_id`` hand to its work in another process
    (see :func:`adopt_observers`): ``{name: data}``, picklable, no secret."""
    with _lock:
        built = {n: o for n, o in _built.items() if n not in _dropped}
    out: dict[str, Any] = {}
    for name, observer in built.items():
        try:
            data = observer.hand_off(run_id)
        except Exception as err:  # the worker's runs go unobserved; the study goes on
            logger.warning("wattwise: the %s observer could not hand run %s off: %s",
                           name, run_id[:8], err)  # fmt: skip
            continue
        if data:
            out[name] = dict(data)
    return out


def adopt_observers(handed: Mapping[str, Any] | None) -> None:
    """In a worker process: take what :func:`hand_off_observers` gave in the driver, so
    the runs made here (a study's trials) are observed as the driver's are."""
    for name, path, _ in BUILT_IN:
        data = (handed or {}).get(name)
        if not data:
            continue
        with _lock:
            _adopted[name] = data
        try:
            observer = _load(name, path)
            if observer is not None:
                observer.adopt(data)
        except Exception as err:
            with _lock:
                _dropped.add(name)
            logger.warning("wattwise: the %s observer is off in this worker: %s", name, err)


def live_sample(run: MeasuringMixin, status: str = "running") -> LiveSample | None:
    """The run's sample for the observers, or None when nobody listens (call it where
    the run's totals may be read: under its lock, or after its sampler has stopped)."""
    if not any(_hears_samples(o) for o in _safely(_warner(run))):
        return None
    from wattwise.carbon import operational_co2e_g
    from wattwise.tracking._job import host_id

    comps, energy, band, _, co2e, _ = run._totals()
    # Timed by the meters' read, not by now: a sample delayed on a busy machine must not
    # shrink the interval its energy is divided by (live power).
    read_at = run._sampler.read_at if run._sampler is not None else time.time()
    job = run._record.get("job")
    return LiveSample(
        run_id=run.id, name=run.name, kind=run.kind, host=host_id(),
        job=str(job["id"]) if isinstance(job, dict) and job.get("id") else None,
        region=run.location.zone, status=status, at=read_at,
        duration_s=(run._ended_at or time.time()) - run._t0_wall,
        energy_j=energy, energy_band_j=band, co2e_g=co2e,
        intensity_g_per_kwh=run.intensity.g_per_kwh, pue=run.pue.value,
        components=tuple(
            LiveComponent(component=c.component, energy_j=c.energy_j, band_j=c.band_j,
                          co2e_g=operational_co2e_g(c.energy_j, run.intensity, run.pue),
                          method=c.method, meter=c.meter)
            for c in comps
        ),
    )  # fmt: skip


def notify(sample: LiveSample | None, warn: Warn) -> None:
    """Tell the observers of samples of ``sample``; one that raises is dropped, said once."""
    if sample is None:
        return
    _tell([o for o in _safely(warn) if _hears_samples(o)], "sampled", warn, sample)


def _hears_samples(observer: RunObserver) -> bool:
    return type(observer).sampled is not RunObserver.sampled
