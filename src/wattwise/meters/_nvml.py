"""NVIDIA GPU energy through NVML (the ``nvidia-ml-py`` package, module ``pynvml``).

Per device, the best source that works:

* **counter**: ``nvmlDeviceGetTotalEnergyConsumption`` (mJ since the driver loaded; Volta
  and later). A reading lower than the previous one means the driver was reloaded: the
  new reading counts from zero, so it is added to what was counted before.
* **sampled**: ``nvmlDeviceGetPowerUsage`` (mW, board power) read by a background thread
  every 0.1 s and integrated after correcting for the sensor's averaging window, with a
  band from sampling coverage (see :mod:`wattwise.meters._sampling`, which follows Yang et
  al., SC'24, arXiv 2312.02741). A device that reports 0 W is not metered, and says why.

``pynvml`` is imported only inside ``probe()``; ``import wattwise.meters`` never loads it.
Keys are ``gpu:<NVML index>``; NVML orders devices by PCI bus id, which is not CUDA's
default order (``CUDA_DEVICE_ORDER=FASTEST_FIRST``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import time
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any, ClassVar, Literal

from wattwise.exceptions import (
    InvalidParameterError,
    MeterError,
    MeterPermissionError,
    MeterUnavailableError,
)
from wattwise.meters._base import Availability, BaseMeter, Component, MeterInfo, Method
from wattwise.meters._hardware import uncertainty_band
from wattwise.meters._sampling import (
    DEFAULT_POLL_INTERVAL_S,
    PowerIntegrator,
    band_from_coverage,
)

# NVML's nvmlDeviceGetPowerUsage documentation: "On Ampere (except GA100) or newer GPUs,
# the API returns power averaged over 1 sec interval. On GA100 and older architectures,
# instantaneous power is returned." NVML_DEVICE_ARCH_AMPERE = 7 (nvml.h).
_ARCH_AMPERE = 7
_AVERAGE_WINDOW_S = 1.0
# GA100 products: A100 and A30 (NVIDIA A100 and A30 Tensor Core GPU datasheets).
_GA100_NAMES = ("A100", "A30")
# Yang et al., SC'24 (arXiv 2312.02741), abstract: "on the A100 and H100 GPUs only 25% of
# the runtime is sampled for power consumption".
_PART_TIME_SENSORS = {"A100": 0.25, "H100": 0.25}

_GPU_EXTRA_HINT = "Install it with: pip install 'wattwise[gpu]'."


@dataclasses.dataclass
class _Device:
    index: int
    handle: Any
    method: Method  # "counter" | "sampled"
    last_mj: int | None = None
    counted_mj: int = 0
    integrator: PowerIntegrator | None = None
    note: str = ""


class NvmlMeter(BaseMeter):
    """Machine-wide energy of each NVIDIA GPU, from NVML's energy counter or power samples.

    ``method`` (the class attribute) is the preferred method; the effective one is in
    ``info().method`` (``sampled`` when any device has no energy counter) and per device
    in ``info().details["devices"]``.

    Args:
        nvml: An NVML module to use instead of importing ``pynvml`` (tests pass
            ``wattwise.testing.fake_nvml.FakeNvml``).
        indices: NVML indices of the GPUs to meter; None meters them all.
        clock: Monotonic seconds for power integration (``time.monotonic``).
        poll_interval_s: Seconds between background power readings of devices without an
            energy counter; None reads power only at ``read()``. Default: 0.1 s with the
            real clock, None with an injected one (tests drive time by hand).

    Raises:
        InvalidParameterError: ``indices`` holds something other than non-negative ints.
    """

    name: ClassVar[str] = "gpu-nvml"
    method: ClassVar[Method] = "counter"
    covers: ClassVar[tuple[Component, ...]] = ("gpu",)
    preference: ClassVar[int] = 20
    way_out: ClassVar[str] = "leave 'gpu-nvml' out of meters to run without GPU energy"
    platforms: ClassVar[tuple[str, ...]] = ("linux", "win32")

    def __init__(
        self,
        nvml: ModuleType | None = None,
        indices: Sequence[int] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        poll_interval_s: float | Literal["auto"] | None = "auto",
        force_sampled: bool = False,
    ) -> None:
        self._force_sampled = force_sampled
        if indices is not None and (
            isinstance(indices, (str, bytes))
            or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in indices)
        ):
            msg = (
                "The 'indices' parameter of NvmlMeter must be a sequence of ints in the range "
                f"[0, inf) or None. Got {indices!r} instead."
            )
            raise InvalidParameterError(msg)
        self._nvml = nvml
        self._indices = list(indices) if indices is not None else None
        self._clock = clock
        if poll_interval_s == "auto":
            poll_interval_s = DEFAULT_POLL_INTERVAL_S if clock is time.monotonic else None
        if poll_interval_s is not None and (
            isinstance(poll_interval_s, (bool, str))
            or not isinstance(poll_interval_s, (int, float))
            or poll_interval_s <= 0
        ):
            msg = (
                "The 'poll_interval_s' parameter of NvmlMeter must be a float in the range "
                f"(0, inf) or None. Got {poll_interval_s!r} instead."
            )
            raise InvalidParameterError(msg)
        self._poll_interval_s: float | None = poll_interval_s
        self._initialised = False
        self._devices: list[_Device] = []
        self._availability: Availability | None = None
        self._permission_denied = False
        self._started = False

    # -- probing -------------------------------------------------------------------------

    @property
    def is_permission_denied(self) -> bool:
        """True when the last probe failed with NVML_ERROR_NO_PERMISSION."""
        return self._permission_denied

    def _module(self) -> ModuleType:
        if self._nvml is None:
            self._nvml = importlib.import_module("pynvml")
        return self._nvml

    def _is_error(self, nvml: ModuleType, err: BaseException, *names: str) -> bool:
        value = getattr(err, "value", None)
        return any(value == getattr(nvml, n, object()) for n in names)

    @classmethod
    def from_context(cls, context: Any) -> NvmlMeter:
        """The meter on ``context.nvml`` (None: import ``pynvml``)."""
        return cls(nvml=context.nvml)

    @property
    def permission_denied(self) -> bool:
        """True when the last probe failed with NVML_ERROR_NO_PERMISSION."""
        return self._permission_denied

    def _probe(self) -> Availability:
        """Initialise NVML and decide each device's method."""
        self._stop_integrators()
        self._permission_denied = False
        self._devices = []
        try:
            nvml = self._module()
        except ImportError:
            return Availability(False, "nvidia-ml-py is not installed.", _GPU_EXTRA_HINT)
        error_type: type[BaseException] = getattr(nvml, "NVMLError", Exception)
        if not self._initialised:
            try:
                nvml.nvmlInit()
            except error_type as err:
                return self._init_failure(nvml, err)
            self._initialised = True
        try:
            count = int(nvml.nvmlDeviceGetCount())
        except error_type as err:
            return Availability(
                False,
                f"NVML could not count the GPUs: {err}.",
                "Check the driver with 'nvidia-smi'.",
            )
        if count == 0:
            self.close()
            return Availability(
                False,
                "NVML is loaded but found no NVIDIA GPU.",
                "Check that the GPU is visible to this machine or container ('nvidia-smi').",
            )
        indices = self._indices if self._indices is not None else list(range(count))
        missing = [i for i in indices if i >= count]
        if missing:
            return Availability(
                False,
                f"GPU indices {missing} were asked for but NVML sees {count} GPU(s) "
                f"(indices 0 to {count - 1}).",
                "Pass indices within that range, or None to meter every GPU.",
            )
        skipped: list[str] = []
        for index in indices:
            try:
                handle = nvml.nvmlDeviceGetHandleByIndex(index)
            except error_type as err:
                skipped.append(f"gpu:{index} ({err})")
                continue
            method, why = self._device_method(nvml, handle, error_type)
            if method is None:
                skipped.append(f"gpu:{index} ({why})")
                continue
            device = _Device(index, handle, method)
            if method == "sampled":
                device.integrator = self._integrator(nvml, handle)
            self._devices.append(device)
        if not self._devices:
            return Availability(
                False,
                f"NVML sees {count} GPU(s) but none reports energy or power: "
                f"{'; '.join(skipped)}.",
                "This happens on some vGPU and MIG setups; GPU energy cannot be measured here.",
            )
        parts = [f"gpu:{d.index} {d.method}" for d in self._devices]
        note = f"; skipped {', '.join(skipped)}" if skipped else ""
        return Availability(True, f"NVML reports {', '.join(parts)}{note}.")

    def _init_failure(self, nvml: ModuleType, err: BaseException) -> Availability:
        if self._is_error(nvml, err, "NVML_ERROR_NO_PERMISSION"):
            self._permission_denied = True
            return Availability(
                False,
                f"NVML could not be initialised: {err}.",
                "Run as a user allowed to use the GPU (the video group, or the container's "
                "--gpus flag).",
            )
        if self._is_error(
            nvml, err, "NVML_ERROR_DRIVER_NOT_LOADED", "NVML_ERROR_LIBRARY_NOT_FOUND"
        ):
            hint = (
                "No NVIDIA driver is loaded here; install it on a GPU machine, or in a "
                "container run with '--gpus all' (NVIDIA Container Toolkit)."
            )
        else:
            hint = "Check the driver with 'nvidia-smi'."
        return Availability(False, f"NVML could not be initialised: {err}.", hint)

    def _device_method(
        self, nvml: ModuleType, handle: Any, error_type: type[BaseException]
    ) -> tuple[Method | None, str]:
        try:
            nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
            if not self._force_sampled:
                return "counter", ""
        except (error_type, AttributeError):
            pass  # NOT_SUPPORTED before Volta, FUNCTION_NOT_FOUND with old drivers
        try:
            power_mw = int(nvml.nvmlDeviceGetPowerUsage(handle))
        except (error_type, AttributeError):
            return None, "neither energy counter nor power reading"
        if power_mw <= 0:
            return None, (
                "no energy counter, and its power reading is 0 W, which a powered GPU never "
                "draws: the sensor does not report here"
            )
        return "sampled", ""

    def _integrator(self, nvml: ModuleType, handle: Any) -> PowerIntegrator:
        name = str(self._optional(nvml, "nvmlDeviceGetName", handle) or "")
        arch = self._optional(nvml, "nvmlDeviceGetArchitecture", handle)
        is_ga100 = any(part in name for part in _GA100_NAMES)
        averaged = isinstance(arch, int) and _ARCH_AMPERE <= arch < 2**31 and not is_ga100
        sensor = next((f for part, f in _PART_TIME_SENSORS.items() if part in name), None)

        def read_w() -> float:
            return int(nvml.nvmlDeviceGetPowerUsage(handle)) / 1000.0

        return PowerIntegrator(
            read_w,
            window_s=_AVERAGE_WINDOW_S if averaged else None,
            sensor_coverage=sensor,
            poll_interval_s=self._poll_interval_s,
            clock=self._clock,
        )

    def _stop_integrators(self) -> None:
        for dev in self._devices:
            if dev.integrator is not None:
                dev.integrator.stop()

    # -- contract ------------------------------------------------------------------------

    def components(self) -> tuple[Component, ...]:
        """``("gpu",)`` when at least one GPU is metered, else ``()``."""
        if self._availability is None:
            self.probe()
        return ("gpu",) if self._devices else ()

    def _ensure_available(self) -> ModuleType:
        if self._availability is None:
            self.probe()
        assert self._availability is not None
        if not self._availability.ok:
            msg = (
                f"Cannot read GPU energy through NVML: {self._availability.reason} "
                f"{self._availability.hint}"
            )
            if self._permission_denied:
                raise MeterPermissionError(msg)
            raise MeterUnavailableError(msg)
        return self._module()

    def read(self) -> dict[str, float]:
        """Cumulative joules per GPU since the first read (first call: all zeros).

        Raises:
            MeterUnavailableError: NVML or the GPUs are not available.
            MeterError: A GPU stopped answering mid-run (lost, reset).
        """
        nvml = self._ensure_available()
        error_type: type[BaseException] = getattr(nvml, "NVMLError", Exception)
        self._started = True
        out: dict[str, float] = {}
        for dev in self._devices:
            try:
                if dev.method == "counter":
                    out[f"gpu:{dev.index}"] = self._read_counter(nvml, dev)
                else:
                    out[f"gpu:{dev.index}"] = self._read_sampled(nvml, dev)
            except error_type as err:
                msg = (
                    f"Reading gpu:{dev.index} through NVML failed mid-run: {err}. The energy "
                    "so far is kept; check the GPU with 'nvidia-smi'."
                )
                raise MeterError(msg) from err
        return out

    def _read_counter(self, nvml: ModuleType, dev: _Device) -> float:
        raw = int(nvml.nvmlDeviceGetTotalEnergyConsumption(dev.handle))
        if dev.last_mj is not None:
            delta = raw - dev.last_mj
            # Lower than before: the driver reloaded and the counter restarted at zero.
            dev.counted_mj += delta if delta >= 0 else raw
        dev.last_mj = raw
        return dev.counted_mj / 1000.0

    def _read_sampled(self, nvml: ModuleType, dev: _Device) -> float:
        assert dev.integrator is not None
        dev.integrator.sample()
        dev.integrator.start()
        return dev.integrator.energy_j

    def device_processes(self) -> dict[str, dict[int, int] | None]:
        """Compute processes on each metered GPU, for attribution.

        Returns:
            Domain key (``gpu:0``) → ``{pid: used GPU memory in bytes}``, or None for a
            device where NVML cannot list its processes (vGPU, MIG, old drivers). Pids are
            the host's: inside a container they may not match the container's own pids.
        """
        if not self._devices:
            return {}
        nvml = self._module()
        out: dict[str, dict[int, int] | None] = {}
        for dev in self._devices:
            procs = self._optional(nvml, "nvmlDeviceGetComputeRunningProcesses", dev.handle)
            if procs is None:
                out[f"gpu:{dev.index}"] = None
                continue
            out[f"gpu:{dev.index}"] = {int(p.pid): int(p.usedGpuMemory or 0) for p in procs}
        return out

    def _optional(self, nvml: ModuleType, func: str, *args: Any) -> Any:
        """One NVML call; None when it is not supported (or fails) on this device."""
        error_type: type[BaseException] = getattr(nvml, "NVMLError", Exception)
        try:
            return getattr(nvml, func)(*args)
        except (error_type, AttributeError):
            return None

    def info(self) -> MeterInfo:
        """Per-device name, memory, power limit, driver, UUID and method."""
        if self._availability is None:
            self.probe()
        devices: list[dict[str, object]] = []
        driver: object = None
        if self._devices:
            nvml = self._module()
            driver = self._optional(nvml, "nvmlSystemGetDriverVersion")
            for dev in self._devices:
                memory = self._optional(nvml, "nvmlDeviceGetMemoryInfo", dev.handle)
                limit_mw = self._optional(nvml, "nvmlDeviceGetEnforcedPowerLimit", dev.handle)
                devices.append(
                    {
                        "index": dev.index,
                        "key": f"gpu:{dev.index}",
                        "name": self._optional(nvml, "nvmlDeviceGetName", dev.handle),
                        "uuid": self._optional(nvml, "nvmlDeviceGetUUID", dev.handle),
                        "memory_total_mib": (
                            int(memory.total) // 2**20 if memory is not None else None
                        ),
                        "power_limit_w": limit_mw / 1000.0 if limit_mw is not None else None,
                        "driver_version": driver,
                        "method": dev.method,
                    }
                )
                if dev.integrator is not None:
                    devices[-1]["sampling"] = dev.integrator.stats()
        methods = {d.method for d in self._devices}
        effective: Method = "sampled" if "sampled" in methods else "counter"
        band, band_source = uncertainty_band(effective, "gpu")
        band_meaning = ""
        sampled = [d for d in self._devices if d.integrator is not None]
        if sampled:
            band, band_source, band_meaning = self._sampled_band(sampled, band_source)
        if self._devices:
            listed = ", ".join(f"gpu:{d.index} ({d.method})" for d in self._devices)
            source = (
                f"NVML {listed}: nvmlDeviceGetTotalEnergyConsumption (mJ) where available, "
                "else nvmlDeviceGetPowerUsage (mW) read every "
                f"{self._poll_interval_s or 'read()'} s, placed at the centre of the "
                "sensor's averaging window and integrated by trapezoid."
            )
        else:
            reason = self._availability.reason if self._availability else "not probed"
            source = f"NVML unavailable: {reason}"
        assumptions = (
            "Whole-board energy of each GPU (memory, fans and VRM included as the board "
            "reports them); NVML cannot split it between processes that share a GPU.",
            "Sampled devices (no energy counter): power read by a background thread every "
            "0.1 s (faster than the 1/6 s shortest power-sample period NVIDIA documents); a "
            "reading that NVML documents as a 1 s average (Ampere or newer except GA100) is "
            "placed at the centre of its window (t - 0.5 s) before the trapezoid rule; "
            "readings of 0 W are not samples (Yang et al., SC'24, arXiv 2312.02741).",
            "Counter devices: a reading lower than the previous one (driver reload) restarts "
            "the count from zero.",
            "Figures are machine-wide; attribution to a process tree happens in "
            "wattwise.tracking.",
        )
        return MeterInfo(
            name=self.name,
            method=effective,
            source=source,
            assumptions=assumptions,
            band_fraction=band,
            band_source=band_source,
            details={"devices": devices, "driver_version": driver},
            band_meaning=band_meaning,
        )

    def _sampled_band(
        self, sampled: list[_Device], counter_source: str
    ) -> tuple[float | None, str, str]:
        """The band of the least covered sampled device (measured, or planned before any)."""
        worst: float | None = None
        unknown: list[str] = []
        for dev in sampled:
            assert dev.integrator is not None
            coverage = dev.integrator.coverage()
            if coverage is None:
                coverage = dev.integrator.planned_coverage()
            if coverage is None:
                unknown.append(f"gpu:{dev.index}")
                continue
            worst = coverage if worst is None else min(worst, coverage)
        band = band_from_coverage(worst)
        if unknown:
            source = (
                f"No band: {', '.join(unknown)} report(s) instantaneous power (NVML: GA100 "
                "and older architectures), so the share of time the sensor observed is not "
                "known."
            )
            return None, source, ""
        if band is None:
            return None, counter_source, ""
        source = (
            f"Sampling coverage {worst:.2f}: the share of the run inside a power reading's "
            "averaging window, times the share the sensor itself samples (0.25 on A100 and "
            "H100: Yang et al., SC'24, arXiv 2312.02741); band = 1 - coverage."
        )
        meaning = (
            "Share of the GPU energy that rests on interpolation between power readings "
            "rather than on what the sensor observed; not a statistical interval."
        )
        return band, source, meaning

    def devices(self) -> list[dict[str, object]]:
        """One dict per metered GPU for the hardware record (``GpuMeter`` protocol)."""
        out: list[dict[str, object]] = []
        details = self.info().details.get("devices", [])
        for dev in details if isinstance(details, list) else []:
            if isinstance(dev, dict):
                out.append(
                    {
                        "index": dev.get("index"),
                        "key": dev.get("key"),
                        "vendor": "nvidia",
                        "name": dev.get("name"),
                        "memory_mib": dev.get("memory_total_mib"),
                        "power_limit_w": dev.get("power_limit_w"),
                        "driver": dev.get("driver_version"),
                        "method": dev.get("method"),
                    }
                )
        return out

    def close(self) -> None:
        """Stop power sampling and shut NVML down if this meter initialised it."""
        self._stop_integrators()
        if self._initialised and self._nvml is not None:
            error_type: type[BaseException] = getattr(self._nvml, "NVMLError", Exception)
            with contextlib.suppress(error_type):
                self._nvml.nvmlShutdown()
            self._initialised = False
        self._devices = []
        self._availability = None
        self._started = False
