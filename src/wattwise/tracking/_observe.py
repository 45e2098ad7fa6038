"""Run observers: code told of every sample a run takes (live metrics, such as Prometheus').

An observer is a callable ``observer(sample)`` taking a :class:`LiveSample`: what one run has
cost so far. Register it with :func:`add_run_observer`; it then hears every run of this
process:

* after each sample of the run's sampler (every ``interval_s``), with ``status ==
  "running"``;
* once more when the run ends, with its final totals and its final ``status``
  (``finished``, ``failed``...).

It is called on the run's sampler thread, outside the run's lock: it must return at once
(hand slow work, such as writing a file, to a thread of its own). An observer that raises
is dropped, said once through the run's warnings: an observer never harms the job.

``wattwise.prometheus`` is such an observer. It is set up from the environment
(``WATTWISE_PROMETHEUS_PORT``, ``WATTWISE_PROMETHEUS_TEXTFILE``) on a run's first sample,
or by ``wattwise.prometheus.enable()``; nothing is imported while neither is used.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from wattwise.exceptions import WattwiseWarning

if TYPE_CHECKING:
    from wattwise.tracking._measuring import MeasuringMixin

#: A run observer (see the module docstring).
RunObserver = Callable[["LiveSample"], None]
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


_lock = threading.Lock()
_observers: list[RunObserver] = []
_env_tried: tuple[str, ...] | None = None


def add_run_observer(observer: RunObserver) -> Callable[[], None]:
    """Tell ``observer`` of every sample of every run of this process.

    Returns:
        A function that removes it again.
    """
    with _lock:
        _observers.append(observer)

    def remove() -> None:
        remove_run_observer(observer)

    return remove


def remove_run_observer(observer: RunObserver) -> None:
    """Stop telling ``observer`` (no error when it was not registered)."""
    with _lock:
        if observer in _observers:
            _observers.remove(observer)


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
    from wattwise import prometheus

    prometheus.enable_from_environment(warn=warn)


def _active(warn: Warn) -> list[RunObserver]:
    """The observers to tell now (cheap when there are none: two dictionary lookups)."""
    if any(os.environ.get(name) for name in _PROMETHEUS_ENVS) or _env_tried:
        _from_environment(warn)
    found = list(_observers)
    module = sys.modules.get("wattwise.prometheus")
    if module is not None:
        exporter = module.active_exporter()
        if exporter is not None:
            found.append(exporter)
    return found


def live_sample(run: MeasuringMixin, status: str = "running") -> LiveSample | None:
    """The run's sample for the observers, or None when nobody listens (call it where
    the run's totals may be read: under its lock, or after its sampler has stopped)."""

    def warn(kind: str, text: str) -> None:
        run._warn_once(kind, text, WattwiseWarning)

    try:
        if not _active(warn):
            return None
    except Exception as err:  # a broken setting never harms the job: said once
        warn("observers", f"live metrics are off: {err}")
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
    """Tell every observer of ``sample``; one that raises is dropped and said once."""
    if sample is None:
        return
    for observer in _active(warn):
        try:
            observer(sample)
        except Exception as err:
            remove_run_observer(observer)
            module = sys.modules.get("wattwise.prometheus")
            if module is not None and observer is module.active_exporter():
                module.disable()
            warn(f"observer:{id(observer)}", f"run observer {observer!r} failed and was "
                 f"dropped ({type(err).__name__}: {err})")  # fmt: skip
