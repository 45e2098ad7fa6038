"""A run's sampler: its meters, read on each tick, turned into the run's energy.

Each :meth:`Sampler.sample` reads every meter (cumulative machine-wide joules per domain
key), takes the difference since the previous reading, and keeps two sums per component:
the machine's energy and the run's share of it (see :mod:`wattwise.tracking._attribution`
for the shares). It knows nothing of the ledger or of the run's record: the run asks it
for totals and writes them.
"""

from __future__ import annotations

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
    """

    def __init__(
        self, meters: list[BaseMeter], tree: ProcessTree, *, strict: bool,
        warn: Callable[[str, str], None],
    ) -> None:  # fmt: skip
        self.meters = list(meters)
        #: How each meter makes its figures (bands refreshed at the end: :meth:`refresh`).
        self.infos: dict[str, MeterInfo] = {m.name: m.info() for m in self.meters}
        self.tree = tree
        self.total_mem = total_memory_bytes()
        self.t0 = self.last_t = time.monotonic()
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
        #: Meters that stopped working mid-run (one sentence each).
        self.meter_errors: list[str] = []
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
        readings: dict[str, float] = {}
        for meter in list(self.meters):
            try:
                for key, joules in meter.read().items():
                    readings[key] = joules
                    self.meter_of[key] = meter
            except MeterError as err:
                self.meters.remove(meter)
                self.meter_errors.append(
                    f"{meter.name} stopped working mid-run and was dropped: {err}"
                )
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
        """The run's energy per component so far, with method, meter and band."""
        out = []
        for comp in sorted(self.machine):
            meter = next(
                (self.meter_of[k] for k in self.meter_of if component_of(k) == comp), None
            )
            info = self.infos.get(meter.name) if meter else None
            energy = self.energy.get(comp, 0.0)
            frac = info.band_fraction if info else None
            out.append(
                ComponentEnergy(
                    component=comp,
                    energy_j=energy,
                    machine_energy_j=self.machine[comp],
                    band_j=None if frac is None else energy * frac,
                    method=info.method if info else "unknown",
                    meter=meter.name if meter else "unknown",
                    source=info.source if info else "",
                    info={"attribution": self.attribution.get(comp, "")},
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
