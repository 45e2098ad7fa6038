"""A run's measuring: its meters, the sampling loop, its totals and what each write holds.

The sampler thread reads every meter each ``interval_s`` (through
:class:`~wattwise.tracking._sampler.Sampler`, which attributes the machine's energy to the
run's process tree) and, at least every ``flush_s``, builds a payload (cumulative fields,
components, new power samples, new metrics) under the run's lock and hands it to the
ledger writer.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from wattwise.exceptions import (
    ConfigError,
    InvalidParameterError,
    MeterFallbackWarning,
    MeterUnavailableError,
)
from wattwise.meters import BaseMeter, MeterInfo
from wattwise.store import ComponentEnergy, RunStatus, identity
from wattwise.tracking._kind import RunKind
from wattwise.tracking._observe import live_sample, notify, run_ended
from wattwise.tracking._proctree import ProcessTree
from wattwise.tracking._result import RunResult
from wattwise.tracking._sampler import meter_record
from wattwise.tracking._state import RunFields, copy_json

#: What one write holds: fields, components, power samples, metric points.
Payload = tuple[dict[str, Any], list[ComponentEnergy], list[Any], list[Any]]


def choose_meters(
    names: tuple[str, ...] | None, given: list[BaseMeter], *, only_given: bool,
    run_kind: RunKind, strict: bool, warn: Callable[[str, str], None],
) -> tuple[list[BaseMeter], list[str]]:  # fmt: skip
    """The run's meters and the fallback sentences of their selection.

    Meters asked for by id that are not here raise (the user's to fix); any other failure
    of the selection leaves the run without meters, said once (raised when ``strict``).
    Meters of components the run kind excludes are closed and left out.
    """
    from wattwise import meters

    chosen: list[BaseMeter] = []
    fallbacks: list[str] = []
    if only_given:
        chosen = list(given)
    else:
        try:
            selection = meters.select_meters(names)
            chosen = [*selection.meters, *given]
            fallbacks = list(selection.fallbacks)
        except (MeterUnavailableError, InvalidParameterError, ConfigError):
            raise  # meters asked for by name that are not here: the user's to fix
        except Exception as err:
            if strict:
                raise
            warn("meters", f"no meter could be set up ({type(err).__name__}: {err}); "
                 "this run measures no energy")  # fmt: skip
            return [], []
    excluded = set(run_kind.excluded_components)
    if excluded:
        kept = [m for m in chosen if not set(m.components()) & excluded]
        for meter in chosen:
            if meter not in kept:
                meter.close()
        chosen = kept
    return chosen, fallbacks


class MeasuringMixin(RunFields):
    """The sampling loop, totals and payloads of :class:`~wattwise.tracking.Run`."""

    def _meter_replacement(self) -> Callable[[BaseMeter, set[str]], list[BaseMeter]] | None:
        """How a meter that stops mid-run is replaced: by the next best meter that works
        for its components, as at start, when the run's meters were chosen by default.
        Meters the user named or gave are kept exactly: their components go unmeasured."""
        if self._only_given or self.settings.meters is not None:
            return None
        excluded = set(self.run_kind.excluded_components)

        def replace(stopped: BaseMeter, lost: set[str]) -> list[BaseMeter]:
            from wattwise import meters

            wanted = sorted(lost - excluded)
            if not wanted:
                return []
            return meters.select_meters(components=wanted, exclude=[stopped.name]).meters

        return replace

    def _meter_fallback(self, kind: str, text: str) -> None:
        """A meter stopped mid-run: one MeterFallbackWarning per meter, kept in the record."""
        self._warn_once(kind, text, MeterFallbackWarning)

    @property
    def tree(self) -> ProcessTree:
        """The process tree energy is attributed to (made by the run kind at start).

        Raises:
            RunStateError: The run has not started.
        """
        if self._sampler is None:
            from wattwise.exceptions import RunStateError

            msg = f"Run {self.id[:8]!r} has not started; its process tree exists after start()."
            raise RunStateError(msg)
        return self._sampler.tree

    @property
    def meter_infos(self) -> dict[str, MeterInfo]:
        """How each meter of this run makes its figures (after start)."""
        return dict(self._sampler.infos) if self._sampler is not None else {}

    def attach(self, pid: int, *, is_child: bool = True) -> None:
        """Attribute energy to the tree rooted at ``pid`` from now on (``wattwise run``).

        The command's pid and start time go in the record (``liveness.command``) at the
        next tick of the sampler, so readers can tell a lost tracker from a dead command.
        """
        with self._lock:
            self._live_sampler().attach(self.run_kind.make_tree(pid, is_child))
            self._command_identity = identity(pid)
            self._record.setdefault("liveness", {})["command"] = self._command_identity
            self._flush_soon = True

    def snapshot(self) -> dict[str, float]:
        """Take a sample now and return what the run has cost so far.

        Returns:
            ``energy_j``, ``energy_band_j``, ``co2e_g``, ``duration_s`` up to this moment.

        Raises:
            RunStateError: The run is not running.
        """
        self._require_running("take a snapshot of")
        with self._lock:
            self._sample()
            _, energy, band, _, co2e, _ = self._totals()
        return {
            "energy_j": energy,
            "energy_band_j": band,
            "co2e_g": co2e,
            "duration_s": time.time() - self._t0_wall,
        }

    def _sample_loop(self) -> None:
        start_cpu = time.thread_time()
        interval = self.settings.interval_s
        flush_every = self.settings.flush_s
        last_flush = time.monotonic()
        tidied = False
        handoff = self._live_handoff()
        while not self._stop.wait(interval):
            if not tidied:  # after the first interval: a short run pays nothing for it
                tidied = True
                handoff.call(lambda writer: writer.housekeeping(), wait_s=None)
            try:
                with self._lock:
                    self._sample()
                    live = live_sample(self)  # for the run observers (_observe); None: none
                    due = time.monotonic() - last_flush >= flush_every
                    if due or self._flush_soon:
                        self._flush_soon = False
                        self._sampler_cpu_s = time.thread_time() - start_cpu
                        self._record["sampler"]["cpu_s"] = self._sampler_cpu_s
                        last_flush = time.monotonic()
                        handoff.flush(self._payload())  # never waits for the ledger
                notify(live, self._warn_once)  # outside the lock; observers return at once
            except Exception as err:
                self._warn_once(f"sampling:{type(err).__name__}", f"sampling failed (retried "
                                f"each interval, said once): {err}")  # fmt: skip
        self._sampler_cpu_s = time.thread_time() - start_cpu

    def _sample(self) -> None:
        """Take a sample (call with ``_lock`` held) and put its facts in the record."""
        sampler = self._live_sampler()
        sampler.sample()
        if self._job is not None:  # after the sample: a takeover counts from the next one
            self._flush_soon = self._job.tick() or self._flush_soon
            self._record["job"] = self._job.record()
        self._record["sampler"]["samples"] = sampler.n_samples
        self._record["cpu_time_s"] = sampler.cpu_time_s
        if sampler.gpu_modes:
            self._record.setdefault("gpu_attribution", {}).update(sampler.gpu_modes)
        if sampler.meter_errors:
            self._record["meter_errors"] = list(sampler.meter_errors)
            described = self._record.setdefault("meters", {})
            fresh = {n: i for n, i in sampler.infos.items() if n not in described}
            described.update(meter_record(fresh))  # a replacement meter: how it measures

    def _refresh_bands(self) -> None:
        """Take each meter's band for the load the run actually had (model meters' bands
        depend on the load range: idle and low load are wider), before the final write."""
        for name, info in self._live_sampler().refresh().items():
            entry = self._record.get("meters", {}).get(name)
            if isinstance(entry, dict):
                entry.update(band_fraction=info.band_fraction, band_source=info.band_source,
                             band_meaning=info.band_meaning,
                             assumptions=list(info.assumptions), details=info.details)

    def _totals(self) -> tuple[list[ComponentEnergy], float, float, float, float, float]:
        from wattwise.carbon import operational_co2e_g

        comps = self._live_sampler().components()
        energy = sum(c.energy_j for c in comps)
        band = sum(c.band_j or 0.0 for c in comps)
        machine = sum(c.machine_energy_j for c in comps)
        co2e = operational_co2e_g(energy, self.intensity, self.pue)
        co2e_band = co2e * band / energy if energy > 0 else 0.0
        return comps, energy, band, machine, co2e, co2e_band

    def _payload(
        self, *, status: RunStatus | None = None, ended_at: float | None = None,
        exit_code: int | None = None,
    ) -> Payload:  # fmt: skip
        """What the next write holds (call with ``_lock`` held): a snapshot, safe to send."""
        comps, energy, band, machine, co2e, co2e_band = self._totals()
        now = time.time()
        fields: dict[str, Any] = {
            "heartbeat_at": now,
            "duration_s": (ended_at or now) - self._t0_wall,
            "energy_j": energy,
            "energy_band_j": band,
            "machine_energy_j": machine,
            "co2e_g": co2e,
            "co2e_band_g": co2e_band,
            "record": copy_json(self._record),
            "params": copy_json(self.params),
        }
        if status is not None:
            fields.update(status=status.value, ended_at=ended_at, exit_code=exit_code)
        samples = self._live_sampler().take_samples()
        metrics, self._pending_metrics = self._pending_metrics, []
        return fields, comps, samples, metrics

    def _make_result(self, status: RunStatus, exit_code: int | None) -> RunResult:
        notify(live_sample(self, status.value), self._warn_once)  # the final sample
        comps, energy, band, machine, co2e, co2e_band = self._totals()
        result = RunResult(
            id=self.id, name=self.name, status=status.value, exit_code=exit_code,
            duration_s=(self._ended_at or time.time()) - self._t0_wall,
            energy_j=energy, energy_band_j=band, machine_energy_j=machine, co2e_g=co2e,
            co2e_band_g=co2e_band, region=self.location.zone,
            intensity_g_per_kwh=self.intensity.g_per_kwh, pue=self.pue.value,
            components=tuple(comps),
        )  # fmt: skip
        run_ended(self, result)  # the observers' last word
        return result
