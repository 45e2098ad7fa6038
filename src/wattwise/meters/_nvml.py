"""NVIDIA GPU energy through NVML (the ``nvidia-ml-py`` package, module ``pynvml``).

Per device, the best source that works:

* **counter**: ``nvmlDeviceGetTotalEnergyConsumption`` (mJ since the driver loaded; Volta
  and later). A reading lower than the previous one means the driver was reloaded: the
  new reading counts from zero, so it is added to what was counted before.
* **sampled**: ``nvmlDeviceGetPowerUsage`` (mW, board power) integrated by the trapezoid
  rule between successive ``read()`` calls. Accuracy depends on the read interval: the
  sensor itself averages over a window and on A100/H100 samples only about a quarter of
  the runtime (Yang et al., SC'24, arXiv 2312.02741).

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
from typing import Any, ClassVar

from wattwise.exceptions import (
    InvalidParameterError,
    MeterError,
    MeterPermissionError,
    MeterUnavailableError,
)
from wattwise.meters._base import Availability, BaseMeter, Component, MeterInfo, Method
from wattwise.meters._hardware import uncertainty_band

_GPU_EXTRA_HINT = "Install it with: pip install 'wattwise[gpu]'."


@dataclasses.dataclass
class _Device:
    index: int
    handle: Any
    method: Method  # "counter" | "sampled"
    last_mj: int | None = None
    counted_mj: int = 0
    last_power_w: float | None = None
    last_t: float | None = None
    sampled_j: float = 0.0


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

    Raises:
        InvalidParameterError: ``indices`` holds something other than non-negative ints.
    """

    name: ClassVar[str] = "gpu-nvml"
    method: ClassVar[Method] = "counter"

    def __init__(
        self,
        nvml: ModuleType | None = None,
        indices: Sequence[int] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
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

    def probe(self) -> Availability:
        """Initialise NVML and decide each device's method. Never raises.

        Once read() has started counting, probe() returns the first answer again.
        """
        if self._availability is not None and self._started:
            return self._availability
        try:
            self._availability = self._probe()
        except Exception as err:  # probe() must never raise
            self._availability = Availability(
                False,
                f"Probing NVML failed unexpectedly: {err!r}.",
                "Run 'wattwise doctor --debug' and report the output.",
            )
        return self._availability

    def _probe(self) -> Availability:
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
            method = self._device_method(nvml, handle, error_type)
            if method is None:
                skipped.append(f"gpu:{index} (neither energy counter nor power reading)")
                continue
            self._devices.append(_Device(index, handle, method))
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
    ) -> Method | None:
        try:
            nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
            return "counter"
        except (error_type, AttributeError):
            pass  # NOT_SUPPORTED before Volta, FUNCTION_NOT_FOUND with old drivers
        try:
            nvml.nvmlDeviceGetPowerUsage(handle)
            return "sampled"
        except (error_type, AttributeError):
            return None

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
        power_w = int(nvml.nvmlDeviceGetPowerUsage(dev.handle)) / 1000.0
        now = self._clock()
        if dev.last_power_w is not None and dev.last_t is not None and now > dev.last_t:
            dev.sampled_j += (dev.last_power_w + power_w) / 2.0 * (now - dev.last_t)
        dev.last_power_w, dev.last_t = power_w, now
        return dev.sampled_j

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
            out[f"gpu:{dev.index}"] = {
                int(p.pid): int(p.usedGpuMemory or 0) for p in procs
            }
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
        methods = {d.method for d in self._devices}
        effective: Method = "sampled" if "sampled" in methods else "counter"
        band, band_source = uncertainty_band(effective, "gpu")
        if self._devices:
            listed = ", ".join(f"gpu:{d.index} ({d.method})" for d in self._devices)
            source = (
                f"NVML {listed}: nvmlDeviceGetTotalEnergyConsumption (mJ) where available, "
                "else nvmlDeviceGetPowerUsage (mW) integrated by trapezoid between reads."
            )
        else:
            reason = self._availability.reason if self._availability else "not probed"
            source = f"NVML unavailable: {reason}"
        assumptions = (
            "Whole-board energy of each GPU (memory, fans and VRM included as the board "
            "reports them); NVML cannot split it between processes that share a GPU.",
            "Sampled devices: power integrated by the trapezoid rule between read() calls; "
            "bursts shorter than the read interval are averaged out.",
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
        )

    def close(self) -> None:
        """Shut NVML down if this meter initialised it."""
        if self._initialised and self._nvml is not None:
            error_type: type[BaseException] = getattr(self._nvml, "NVMLError", Exception)
            with contextlib.suppress(error_type):
                self._nvml.nvmlShutdown()
            self._initialised = False
        self._devices = []
        self._availability = None
        self._started = False
