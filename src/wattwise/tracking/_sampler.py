"""A run's sampler: its meters, read on each tick, turned into the run's energy.

Each :meth:`Sampler.sample` reads every meter (cumulative machine-wide joules per domain
key), takes the difference since the previous reading, and keeps two sums per component:
the machine's energy and the run's share of it (see :mod:`wattwise.tracking._attribution`
for the shares). It knows nothing of the ledger or of the run's record: the run asks it
for totals and writes them.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from wattwise.exceptions import MeterError
from wattwise.meters import COMPONENT_ATTRIBUTION, BaseMeter, MeterInfo, component_of
from wattwise.store import ComponentEnergy
from wattwise.tracking._attribution import cpu_share, dram_share, gpu_share
from wattwise.tracking._proctree import ProcessTree, machine_busy_cpu_s, total_memory_bytes

logger = logging.getLogger("wattwise")

#: How energy of each component is attributed to a run's process tree.
ATTRIBUTION = dict(COMPONENT_ATTRIBUTION)

#: One power sample: seconds since start, component, watts, run's joules so far.
PowerSample = tuple[float, str, float, float]


class Sampler:
    """The meters of one run and the energy they measured for it (not thread-safe: the
    run calls it under its lock).

    Args:
        meters: The run's meters; one that cannot be read now is left out (and said).
        tree: The process tree energy is attributed to.
        strict: Let a meter that cannot be read at start raise.
        warn: ``(kind, text)``: report a fault once per kind.
        replace: ``(stopped meter, its components)`` -> meters to measure them from now on
            (None: no fallback, as for meters the user named or gave).
        on_fallback: ``(kind, text)``: report a meter that stopped mid-run (default: warn).
    """

    def __init__(
        self, meters: list[BaseMeter], tree: ProcessTree, *, strict: bool,
        warn: Callable[[str, str], None],
        replace: Callable[[BaseMeter, set[str]], list[BaseMeter]] | None = None,
        on_fallback: Callable[[str, str], None] | None = None,
    ) -> None:  # fmt: skip
        self.meters = list(meters)
        self._replace = replace
        self._on_fallback = on_fallback or warn
        #: How each meter makes its figures (bands refreshed at the end: :meth:`refresh`).
        self.infos: dict[str, MeterInfo] = {m.name: m.info() for m in self.meters}
        self.tree = tree
        self.total_mem = total_memory_bytes()
        self.t0 = self.last_t = time.monotonic()
        #: Wall-clock time of the latest read of the meters (what live power is timed by).
        self.read_at = time.time()
        self.last_busy = machine_busy_cpu_s()
        self.last_proc = tree.cpu_s()
        self.meter_of: dict[str, BaseMeter] = {}
        self.last_reading: dict[str, float] = {}
        #: Per component: the run's joules and the whole machine's.
        self.energy: dict[str, float] = {}
        self.machine: dict[str, float] = {}
        self.n_samples = 0
        #: CPU seconds of the tree at the last sample.
        self.cpu_time_s = 0.0
        #: Meters that stopped working mid-run (one sentence each, saying what followed).
        self.meter_errors: list[str] = []
        #: Per component, each switch of meter mid-run: from, to (None: not measured from
        #: then on), when, the energy and band fraction up to then (see :meth:`components`).
        self.switches: dict[str, list[dict[str, Any]]] = {}
        #: Per component, the meter that measured it last (kept when it stops).
        self._last_meter: dict[str, BaseMeter] = {}
        #: Per GPU key, how its share was decided (see ``gpu_share``).
        self.gpu_modes: dict[str, str] = {}
        #: Power samples not written yet.
        self.pending: list[PowerSample] = []
        #: Per meter domain (``cpu:0``), a share fixed from outside, used instead of the
        #: component's rule: a job's election (1 measured whole here, 0 measured elsewhere).
        self.fixed_shares: dict[str, float] = {}
        #: How each component's energy is attributed (a job's election may change it).
        self.attribution: dict[str, str] = dict(ATTRIBUTION)
        for meter in list(self.meters):
            try:
                for key, joules in meter.read().items():
                    self.last_reading[key] = joules
                    self.meter_of[key] = meter
            except Exception as err:
                if strict:
                    raise
                self.meters.remove(meter)
                warn(f"meter:{meter.name}", f"meter {meter.name} could not be read "
                     f"and is left out of this run: {err}")  # fmt: skip

    def attach(self, tree: ProcessTree) -> None:
        """Attribute to ``tree`` from now on."""
        self.tree = tree
        self.last_proc = tree.cpu_s()

    def sample(self) -> None:
        """Read every meter and add the run's share of what was spent since the last read."""
        now = time.monotonic()
        self.read_at = time.time()
        readings: dict[str, float] = {}
        for meter in list(self.meters):
            try:
                for key, joules in meter.read().items():
                    readings[key] = joules
                    self.meter_of[key] = meter
            except MeterError as err:
                self._lose(meter, err, now)
        proc = self.tree.cpu_s()
        busy = machine_busy_cpu_s()
        rss = self.tree.rss_bytes()
        d_proc, d_busy = proc - self.last_proc, busy - self.last_busy
        dt = now - self.last_t
        gpu_shares = self._gpu_shares(readings)
        step: dict[str, float] = {}
        for key, joules in readings.items():
            previous = self.last_reading.get(key)
            self.last_reading[key] = joules
            if previous is None:
                continue
            delta = max(0.0, joules - previous)
            comp = component_of(key)
            fixed = self.fixed_shares.get(key)
            if fixed is not None:
                share = fixed
            elif comp == "gpu":
                share = gpu_shares.get(key, 1.0)
            elif comp == "cpu":
                share = cpu_share(d_proc, d_busy)
            elif comp == "dram":
                share = dram_share(rss, self.total_mem)
            else:
                share = 1.0
            self.machine[comp] = self.machine.get(comp, 0.0) + delta
            step[comp] = step.get(comp, 0.0) + delta * share
        for name, joules in step.items():
            self.energy[name] = self.energy.get(name, 0.0) + joules
            if dt > 0:
                self.pending.append((round(now - self.t0, 3), name, joules / dt,
                                     self.energy[name]))  # fmt: skip
        self.last_t, self.last_proc, self.last_busy = now, proc, busy
        self.n_samples += 1
        self.cpu_time_s = proc

    def _lose(self, meter: BaseMeter, err: BaseException, now: float) -> None:
        """``meter`` stopped working: drop it; measure its components with the next best
        meter that works (``replace``), else not at all; say it once, in the record too."""
        self.meters.remove(meter)
        keys = [key for key, owner in self.meter_of.items() if owner is meter]
        lost = {component_of(key) for key in keys}
        for key in keys:  # a replacement's counters start from their own first reading
            del self.meter_of[key]
            self.last_reading.pop(key, None)
        with contextlib.suppress(Exception):
            meter.close()
        found: list[BaseMeter] = []
        if self._replace is not None and lost:
            try:
                found = self._replace(meter, set(lost))
            except Exception as failure:  # no fallback: the components go unmeasured
                logger.debug("wattwise: no replacement for %s: %s", meter.name, failure)
        took: dict[str, BaseMeter] = {}
        for new in found:
            try:
                baseline = new.read()
                info = new.info()
            except Exception:  # a replacement that cannot be read is no replacement
                with contextlib.suppress(Exception):
                    new.close()
                continue
            self.meters.append(new)
            self.infos[new.name] = info
            for key, joules in baseline.items():
                self.last_reading[key] = joules
                self.meter_of[key] = new
                took[component_of(key)] = new
        at_s = round(now - self.t0, 1)
        old = self.infos.get(meter.name)
        for comp in sorted(lost):
            self._last_meter[comp] = took.get(comp, meter)
            self.switches.setdefault(comp, []).append({
                "from": meter.name, "to": took[comp].name if comp in took else None,
                "at_s": at_s, "energy_before_j": self.energy.get(comp, 0.0),
                "band_fraction_before": old.band_fraction if old else None, "error": str(err),
            })  # fmt: skip
        said = "; ".join(
            f"{comp} is {_verb(took[comp])} with the {took[comp].name} meter from then on"
            if comp in took else f"{comp} is not measured from then on (its energy stops at "
            f"{self.energy.get(comp, 0.0):.3g} J)" for comp in sorted(lost)
        ) or "it had measured nothing yet"  # fmt: skip
        text = f"meter {meter.name} stopped working {at_s:g} s into the run ({err}); {said}."
        self.meter_errors.append(text)
        self._on_fallback(f"fallback:{meter.name}", text)

    def _gpu_shares(self, readings: Mapping[str, float]) -> dict[str, float]:
        """Per GPU key, the run's share of the board's energy."""
        keys = [k for k in readings if component_of(k) == "gpu" and k not in self.fixed_shares]
        if not keys:
            return {}
        shares: dict[str, float] = {}
        pids = self.tree.pids()
        for meter in {self.meter_of[k] for k in keys}:
            lister = getattr(meter, "device_processes", None)
            listed = lister() if callable(lister) else {}
            for key in keys:
                if self.meter_of[key] is meter:
                    shares[key], self.gpu_modes[key] = gpu_share(listed.get(key), pids)
        return shares

    def components(self) -> list[ComponentEnergy]:
        """The run's energy per component so far, with method, meter and band.

        A component whose meter stopped mid-run is labelled with the meter that measures it
        now (a counter replaced by a model is *estimated* from then on), and its band adds
        each meter's band over the energy it measured; ``info["fallback"]`` says who
        measured what, and from when.
        """
        out = []
        for comp in sorted(self.machine):
            meter = next(
                (self.meter_of[k] for k in self.meter_of if component_of(k) == comp), None
            ) or self._last_meter.get(comp)
            if meter is not None:
                self._last_meter[comp] = meter
            info = self.infos.get(meter.name) if meter else None
            energy = self.energy.get(comp, 0.0)
            frac = info.band_fraction if info else None
            band = None if frac is None else energy * frac
            extra: dict[str, Any] = {"attribution": self.attribution.get(comp, "")}
            switches = self.switches.get(comp)
            if switches:
                extra["fallback"] = [dict(switch) for switch in switches]
                band = _band_over_switches(switches, energy, frac)
            out.append(
                ComponentEnergy(
                    component=comp,
                    energy_j=energy,
                    machine_energy_j=self.machine[comp],
                    band_j=band,
                    method=info.method if info else "unknown",
                    meter=meter.name if meter else "unknown",
                    source=info.source if info else "",
                    info=extra,
                )
            )
        return out

    def take_samples(self) -> list[PowerSample]:
        """The power samples not written yet (the caller writes them or puts them back)."""
        samples, self.pending = self.pending, []
        return samples

    def refresh(self) -> dict[str, MeterInfo]:
        """Ask each meter again how it made its figures (model meters' bands depend on the
        load the run had); returns the infos that changed hands."""
        fresh: dict[str, MeterInfo] = {}
        for meter in self.meters:
            try:
                info = meter.info()
            except Exception as err:  # keep the band from the start
                logger.debug("wattwise: meter %s info failed: %s", meter.name, err)
                continue
            self.infos[meter.name] = fresh[meter.name] = info
        return fresh

    def close(self) -> None:
        """Close every meter (NVML shutdown); one that cannot close is only logged."""
        for meter in self.meters:
            try:
                meter.close()
            except Exception:  # a meter that cannot close must not fail the run
                logger.debug("wattwise: closing meter %s failed", meter.name)


def _verb(meter: BaseMeter) -> str:
    """``estimated`` for a model meter, ``measured`` for a counter."""
    try:
        return "estimated" if meter.info().method == "model" else "measured"
    except Exception:  # the sentence must not fail the sample
        return "measured"


def _band_over_switches(
    switches: list[dict[str, Any]], energy: float, frac: float | None
) -> float | None:
    """The band of a component measured by several meters in turn: each meter's relative
    band over the energy it measured (None only when no meter has a band)."""
    fracs = [s["band_fraction_before"] for s in switches]
    if frac is None and all(f is None for f in fracs):
        return None
    band, before = 0.0, 0.0
    for switch, part_frac in zip(switches, fracs, strict=True):
        upto = float(switch["energy_before_j"])
        band += (upto - before) * (part_frac or 0.0)
        before = upto
    last = switches[-1]
    if last["to"] is not None:
        band += (energy - before) * (frac or 0.0)
    return band


def meter_record(infos: Mapping[str, MeterInfo]) -> dict[str, Any]:
    """The record's ``meters`` field: how each meter makes its figures."""
    return {
        name: {
            "method": info.method,
            "source": info.source,
            "assumptions": list(info.assumptions),
            "band_fraction": info.band_fraction,
            "band_source": info.band_source,
            "band_meaning": info.band_meaning,
            "details": info.details,
        }
        for name, info in infos.items()
    }
