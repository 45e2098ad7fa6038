"""AMD GPU energy through AMD SMI (the ``amdsmi`` package that ships with ROCm 6 and later).

Per device, the best source that works:

* **counter**: ``amdsmi_get_energy_count`` returns an accumulator and its resolution
  (``counter_resolution``, µJ per count); energy = count x resolution. The count is
  under ``energy_accumulator`` since amdsmi 6.2.1 and under ``power`` before (the same
  reading, as Zeus's ``zeus/device/gpu/amd.py`` handles it). A reading lower than the
  previous one (driver reload) restarts from zero and is added to what was counted. A
  counter that reads 0 while the device reports power is invalid (ROCm/amdsmi issue #38):
  such a device is sampled instead.
* **sampled**: ``amdsmi_get_power_info``'s ``average_socket_power`` (else
  ``current_socket_power``), in W, read in the background and integrated (see
  :mod:`wattwise.meters._sampling`). amdsmi does not state the averaging window, so no
  window correction is made and no band is given.

MI250/MI250X: each package holds two dies that amdsmi lists as two GPUs, and the driver
reports power and energy for the package on the first die only (Zeus, ``AMDGPUs``
constructor). The second die reads 0 (or "N/A"): it is not metered, and the first die's
record says it covers both (``covers_dies``), so attribution charges the package.

``amdsmi`` is imported only inside ``probe()``; importing it needs ``libamd_smi.so`` from
ROCm. Keys are ``gpu:<amdsmi index>`` (amdsmi's enumeration order, which can differ from
HIP's ``HIP_VISIBLE_DEVICES`` order).
"""

from __future__ import annotations

import contextlib
import ctypes.util
import dataclasses
import importlib
import importlib.util
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
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
from wattwise.meters._sampling import DEFAULT_POLL_INTERVAL_S, PowerIntegrator

_AMD_EXTRA_HINT = (
    "Install ROCm and the matching package with: pip install 'wattwise[amd]' (amdsmi's "
    "version must match the installed ROCm)."
)
# amdsmi_wrapper.py status codes
_NO_PERM = 10
_DRIVER_NOT_LOADED = (34, 51)  # AMDSMI_STATUS_DRIVER_NOT_LOADED, AMDSMI_STATUS_NO_DRV


class _LibraryMissingError(Exception):
    """ROCm's shared library is absent: importing amdsmi would fail (and print)."""


def _missing_library() -> str:
    """Where ``libamd_smi.so`` was looked for when it is absent, or "" when it is there.

    The places are those ``amdsmi_wrapper.py`` tries (``$ROCM_HOME``/``$ROCM_PATH``/lib,
    the loader's path, the package directory, ``/opt/rocm/lib``). Checked before importing
    ``amdsmi``, whose import prints to standard output when the library is missing.
    """
    spec = importlib.util.find_spec("amdsmi")
    if spec is None:
        msg = "amdsmi"
        raise ImportError(msg)
    places: list[Path] = []
    rocm = os.environ.get("ROCM_HOME", os.environ.get("ROCM_PATH"))
    if rocm:
        places.append(Path(rocm) / "lib" / "libamd_smi.so")
    for folder in spec.submodule_search_locations or []:
        places.append(Path(folder) / "libamd_smi.so")
    places.append(Path(os.environ.get("ROCM_PATH", "/opt/rocm")) / "lib" / "libamd_smi.so")
    if any(p.is_file() for p in places) or ctypes.util.find_library("amd_smi"):
        return ""
    return "looked in " + ", ".join(str(p) for p in dict.fromkeys(places)) + " and the loader path"


@dataclasses.dataclass
class _Device:
    index: int
    handle: Any
    name: str
    method: Method
    resolution_uj: float = 0.0
    last_count: int | None = None
    counted: int = 0
    integrator: PowerIntegrator | None = None
    covers_dies: tuple[int, ...] = ()


def _watts(value: object) -> float | None:
    """A power field as W, or None for "N/A" and 0 (not reporting)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        return None
    return float(value)


class AmdSmiMeter(BaseMeter):
    """Machine-wide energy of each AMD GPU, from its energy accumulator or power samples.

    Args:
        amdsmi: A module to use instead of importing ``amdsmi`` (tests pass
            ``wattwise.testing.fake_amdsmi.FakeAmdSmi``).
        indices: amdsmi indices of the GPUs to meter; None meters them all.
        clock: Monotonic seconds for power integration.
        poll_interval_s: Seconds between background power readings of sampled devices;
            None reads power at ``read()`` only. Default: 0.1 s with the real clock, None
            with an injected one.

    Raises:
        InvalidParameterError: ``indices`` holds something other than non-negative ints.
    """

    name: ClassVar[str] = "gpu-amdsmi"
    method: ClassVar[Method] = "counter"
    covers: ClassVar[tuple[Component, ...]] = ("gpu",)
    preference: ClassVar[int] = 20
    way_out: ClassVar[str] = "leave 'gpu-amdsmi' out of meters to run without GPU energy"
    platforms: ClassVar[tuple[str, ...]] = ("linux",)

    def __init__(
        self,
        amdsmi: ModuleType | None = None,
        indices: Sequence[int] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        poll_interval_s: float | Literal["auto"] | None = "auto",
    ) -> None:
        if indices is not None and (
            isinstance(indices, (str, bytes))
            or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in indices)
        ):
            msg = (
                "The 'indices' parameter of AmdSmiMeter must be a sequence of ints in the "
                f"range [0, inf) or None. Got {indices!r} instead."
            )
            raise InvalidParameterError(msg)
        if poll_interval_s == "auto":
            poll_interval_s = DEFAULT_POLL_INTERVAL_S if clock is time.monotonic else None
        if poll_interval_s is not None and (
            isinstance(poll_interval_s, (bool, str)) or poll_interval_s <= 0
        ):
            msg = (
                "The 'poll_interval_s' parameter of AmdSmiMeter must be a float in the range "
                f"(0, inf) or None. Got {poll_interval_s!r} instead."
            )
            raise InvalidParameterError(msg)
        self._poll: float | None = poll_interval_s
        self._amdsmi = amdsmi
        self._indices = list(indices) if indices is not None else None
        self._clock = clock
        self._initialised = False
        self._devices: list[_Device] = []
        self._notes: list[str] = []
        self._permission = False

    @classmethod
    def from_context(cls, context: Any) -> AmdSmiMeter:
        """The meter on ``context.amdsmi`` (None: import ``amdsmi``)."""
        return cls(amdsmi=context.amdsmi)

    @property
    def permission_denied(self) -> bool:
        """True when amdsmi refused for lack of permission."""
        return self._permission

    def _module(self) -> ModuleType:
        if self._amdsmi is None:
            missing = _missing_library()
            if missing:
                raise _LibraryMissingError(missing)
            self._amdsmi = importlib.import_module("amdsmi")
        return self._amdsmi

    def _errors(self, amdsmi: ModuleType) -> tuple[type[BaseException], ...]:
        base = getattr(amdsmi, "AmdSmiException", Exception)
        if not (isinstance(base, type) and issubclass(base, BaseException)):
            base = Exception
        return (base, KeyError, TypeError)

    # -- probing -------------------------------------------------------------------------

    def _probe(self) -> Availability:
        """Initialise amdsmi and decide each device's method."""
        self._stop()
        self._devices, self._notes, self._permission = [], [], False
        try:
            amdsmi = self._module()
        except _LibraryMissingError as err:
            return Availability(
                False,
                f"amdsmi is installed but ROCm's libamd_smi.so is not found ({err}).",
                "Install ROCm (amd-smi-lib) on an AMD GPU machine, or set ROCM_PATH to its "
                "prefix; on other machines this is expected.",
            )
        except ImportError:
            return Availability(False, "amdsmi is not installed.", _AMD_EXTRA_HINT)
        except Exception as err:  # the package imports libamd_smi.so at import time
            return Availability(
                False,
                f"amdsmi is installed but could not load the ROCm library: {err!r}.",
                "Install ROCm (libamd_smi.so) on an AMD GPU machine, or leave 'gpu-amdsmi' "
                "out; on other machines this is expected.",
            )
        errors = self._errors(amdsmi)
        if not self._initialised:
            try:
                amdsmi.amdsmi_init(amdsmi.AmdSmiInitFlags.INIT_AMD_GPUS)
            except errors as err:
                return self._init_failure(err)
            self._initialised = True
        try:
            handles = list(amdsmi.amdsmi_get_processor_handles())
        except errors as err:
            return Availability(
                False, f"amdsmi could not list the GPUs: {err}.", "Check 'amd-smi list'."
            )
        if not handles:
            self.close()
            return Availability(
                False,
                "amdsmi is loaded but found no AMD GPU.",
                "Check that the GPU is visible here ('amd-smi list'; in a container pass "
                "--device=/dev/kfd --device=/dev/dri).",
            )
        indices = self._indices if self._indices is not None else list(range(len(handles)))
        missing = [i for i in indices if i >= len(handles)]
        if missing:
            return Availability(
                False,
                f"GPU indices {missing} were asked for but amdsmi sees {len(handles)} GPU(s).",
                "Pass indices within that range, or None to meter every GPU.",
            )
        skipped: list[str] = []
        for index in indices:
            device, why = self._device(amdsmi, index, handles[index], errors)
            if device is None:
                skipped.append(f"gpu:{index} ({why})")
            else:
                self._devices.append(device)
        self._pair_mi250(amdsmi, handles, errors, skipped)
        if not self._devices:
            return Availability(
                False,
                f"amdsmi sees {len(handles)} GPU(s) but none reports energy or power: "
                f"{'; '.join(skipped)}.",
                "Update ROCm and the amdgpu driver; GPU energy cannot be measured here.",
            )
        self._notes.extend(skipped)
        parts = [f"gpu:{d.index} {d.method}" for d in self._devices]
        note = f"; skipped {', '.join(skipped)}" if skipped else ""
        return Availability(True, f"amdsmi reports {', '.join(parts)}{note}.")

    def _init_failure(self, err: BaseException) -> Availability:
        code = getattr(err, "err_code", None)
        if code == _NO_PERM:
            self._permission = True
            return Availability(
                False,
                f"amdsmi could not be initialised: {err}.",
                "Run as a user in the 'render' and 'video' groups (or pass /dev/kfd and "
                "/dev/dri to the container).",
            )
        if code in _DRIVER_NOT_LOADED:
            return Availability(
                False,
                f"amdsmi could not be initialised: {err}.",
                "No amdgpu driver is loaded; install ROCm's amdgpu-dkms on an AMD GPU machine.",
            )
        return Availability(
            False, f"amdsmi could not be initialised: {err}.", "Check 'amd-smi list'."
        )

    def _power_w(self, amdsmi: ModuleType, handle: Any) -> float | None:
        info = amdsmi.amdsmi_get_power_info(handle)
        for field in ("average_socket_power", "current_socket_power", "socket_power"):
            watts = _watts(info.get(field))
            if watts is not None:
                return watts
        return None

    def _device(
        self, amdsmi: ModuleType, index: int, handle: Any, errors: tuple[type[BaseException], ...]
    ) -> tuple[_Device | None, str]:
        try:
            name = str(amdsmi.amdsmi_get_gpu_asic_info(handle).get("market_name", ""))
        except errors:
            name = ""
        try:
            power = self._power_w(amdsmi, handle)
        except errors:
            power = None
        try:
            energy = amdsmi.amdsmi_get_energy_count(handle)
            count = energy.get("energy_accumulator", energy.get("power"))
            resolution = float(energy["counter_resolution"])
        except errors:
            count, resolution = None, 0.0
        if isinstance(count, int) and count > 0 and resolution > 0:
            return _Device(index, handle, name, "counter", resolution_uj=resolution), ""
        if power is not None:
            dev = _Device(index, handle, name, "sampled")
            dev.integrator = self._integrator(amdsmi, handle)
            if count == 0:
                self._notes.append(
                    f"gpu:{index}: energy counter reads 0 while the GPU draws {power:.0f} W "
                    "(ROCm/amdsmi issue #38): power is sampled instead"
                )
            return dev, ""
        return None, "reports neither energy nor power (0 W or N/A)"

    def _pair_mi250(
        self,
        amdsmi: ModuleType,
        handles: list[Any],
        errors: tuple[type[BaseException], ...],
        skipped: list[str],
    ) -> None:
        """Record an MI250/MI250X first die as covering its silent twin."""
        metered = {d.index: d for d in self._devices}
        for dev in self._devices:
            if "MI250" not in dev.name or dev.index % 2 or dev.index + 1 >= len(handles):
                continue
            twin = dev.index + 1
            if twin in metered:
                continue
            dev.covers_dies = (dev.index, twin)
            for i, text in enumerate(skipped):
                if text.startswith(f"gpu:{twin} "):
                    skipped[i] = (
                        f"gpu:{twin} (second die of the MI250/MI250X package; its power is "
                        f"reported with gpu:{dev.index}'s)"
                    )

    def _integrator(self, amdsmi: ModuleType, handle: Any) -> PowerIntegrator:
        def read_w() -> float:
            return self._power_w(amdsmi, handle) or 0.0

        return PowerIntegrator(
            read_w, window_s=None, poll_interval_s=self._poll, clock=self._clock
        )

    # -- contract ------------------------------------------------------------------------

    def components(self) -> tuple[Component, ...]:
        """``("gpu",)`` when at least one GPU is metered."""
        if self._availability is None:
            self.probe()
        return ("gpu",) if self._devices else ()

    def read(self) -> dict[str, float]:
        """Cumulative joules per GPU since the first read (first call: all zeros).

        Raises:
            MeterUnavailableError: amdsmi or the GPUs are not available.
            MeterPermissionError: amdsmi refused for lack of permission.
            MeterError: A GPU stopped answering mid-run.
        """
        if self._availability is None:
            self.probe()
        assert self._availability is not None
        if not self._availability.ok:
            state = self._availability
            msg = f"Cannot read AMD GPU energy: {state.reason} {state.hint}"
            if self._permission:
                raise MeterPermissionError(msg)
            raise MeterUnavailableError(msg)
        amdsmi = self._module()
        self._started = True
        out: dict[str, float] = {}
        for dev in self._devices:
            try:
                if dev.method == "counter":
                    energy = amdsmi.amdsmi_get_energy_count(dev.handle)
                    raw = int(energy.get("energy_accumulator", energy.get("power")))
                    if dev.last_count is not None:
                        delta = raw - dev.last_count
                        dev.counted += delta if delta >= 0 else raw  # reload: from zero
                    dev.last_count = raw
                    out[f"gpu:{dev.index}"] = dev.counted * dev.resolution_uj / 1e6
                else:
                    assert dev.integrator is not None
                    dev.integrator.sample()
                    dev.integrator.start()
                    out[f"gpu:{dev.index}"] = dev.integrator.energy_j
            except self._errors(amdsmi) as err:
                msg = (
                    f"Reading gpu:{dev.index} through amdsmi failed mid-run: {err}. The energy "
                    "so far is kept; check the GPU with 'amd-smi monitor'."
                )
                raise MeterError(msg) from err
        return out

    def device_processes(self) -> dict[str, dict[int, int] | None]:
        """Processes on each metered GPU: key -> {pid: VRAM bytes}, or None when unlisted."""
        if not self._devices:
            return {}
        amdsmi = self._module()
        errs = self._errors(amdsmi)
        lookup_errs: tuple[type[BaseException], ...] = (*errs, IndexError)
        out: dict[str, dict[int, int] | None] = {}
        for dev in self._devices:
            procs: dict[int, int] | None = {}
            for die in dev.covers_dies or (dev.index,):
                handle = dev.handle if die == dev.index else None
                if handle is None:
                    try:
                        handle = list(amdsmi.amdsmi_get_processor_handles())[die]
                    except lookup_errs:
                        procs = None
                        break
                try:
                    listed = amdsmi.amdsmi_get_gpu_process_list(handle)
                except self._errors(amdsmi):
                    procs = None
                    break
                for p in listed:
                    if isinstance(p, dict) and "pid" in p:
                        usage = p.get("memory_usage") or {}
                        vram = (
                            usage.get("vram_mem", p.get("mem", 0))
                            if isinstance(usage, dict)
                            else 0
                        )
                        assert procs is not None
                        procs[int(p["pid"])] = procs.get(int(p["pid"]), 0) + int(vram or 0)
            out[f"gpu:{dev.index}"] = procs
        return out

    def _optional(self, amdsmi: ModuleType, func: str, handle: Any) -> Any:
        optional_errs: tuple[type[BaseException], ...] = (*self._errors(amdsmi), AttributeError)
        try:
            return getattr(amdsmi, func)(handle)
        except optional_errs:
            return None

    def devices(self) -> list[dict[str, object]]:
        """One dict per metered GPU for the hardware record (``GpuMeter`` protocol)."""
        if self._availability is None:
            self.probe()
        if not self._devices:
            return []
        amdsmi = self._module()
        out: list[dict[str, object]] = []
        for dev in self._devices:
            vram = self._optional(amdsmi, "amdsmi_get_gpu_vram_info", dev.handle)
            cap = self._optional(amdsmi, "amdsmi_get_power_cap_info", dev.handle)
            driver = self._optional(amdsmi, "amdsmi_get_gpu_driver_info", dev.handle)
            row: dict[str, object] = {
                "index": dev.index,
                "key": f"gpu:{dev.index}",
                "vendor": "amd",
                "name": dev.name or None,
                "memory_mib": vram.get("vram_size") if isinstance(vram, dict) else None,
                "power_limit_w": (
                    cap["power_cap"] / 1e6
                    if isinstance(cap, dict) and isinstance(cap.get("power_cap"), int)
                    else None
                ),
                "driver": driver.get("driver_version") if isinstance(driver, dict) else None,
                "method": dev.method,
                "uuid": self._optional(amdsmi, "amdsmi_get_gpu_device_uuid", dev.handle),
            }
            if dev.method == "counter":
                row["counter_resolution_uj"] = dev.resolution_uj
            if dev.covers_dies:
                row["covers_dies"] = list(dev.covers_dies)
            if dev.integrator is not None:
                row["sampling"] = dev.integrator.stats()
            out.append(row)
        return out

    def info(self) -> MeterInfo:
        """Per-device method, resolution, MI250 pairing, and the counting rules."""
        devices = self.devices()
        methods = {d.method for d in self._devices}
        effective: Method = "sampled" if "sampled" in methods else "counter"
        band, band_source = uncertainty_band(effective, "gpu")
        if effective == "sampled":
            band, band_source = (
                None,
                (
                    "No band: amdsmi does not state the averaging window of its power fields, "
                    "so the share of time the sensor observed is not known."
                ),
            )
        if self._devices:
            listed = ", ".join(f"gpu:{d.index} ({d.method})" for d in self._devices)
            source = (
                f"amdsmi {listed}: amdsmi_get_energy_count (count x counter_resolution µJ) "
                "where valid, else amdsmi_get_power_info average_socket_power (W) integrated "
                "by trapezoid."
            )
        else:
            reason = self._availability.reason if self._availability else "not probed"
            source = f"amdsmi unavailable: {reason}"
        assumptions = (
            "Whole-package energy of each GPU as the driver reports it (socket power).",
            "MI250/MI250X: the first die of a package reports power for both dies; the "
            "second die is not metered and the first die's figure covers the package "
            "(details covers_dies).",
            "A counter reading lower than the previous one (driver reload) restarts the "
            "count from zero; a counter stuck at 0 while power is reported is not trusted "
            "(ROCm/amdsmi issue #38).",
            "Figures are machine-wide; attribution to a process tree happens in "
            "wattwise.tracking (VRAM share of each GPU's processes).",
        )
        return MeterInfo(
            name=self.name,
            method=effective,
            source=source,
            assumptions=assumptions,
            band_fraction=band,
            band_source=band_source,
            details={"devices": devices, "notes": list(self._notes)},
        )

    def _stop(self) -> None:
        for dev in self._devices:
            if dev.integrator is not None:
                dev.integrator.stop()

    def close(self) -> None:
        """Stop power sampling and shut amdsmi down if this meter initialised it."""
        self._stop()
        if self._initialised and self._amdsmi is not None:
            with contextlib.suppress(*self._errors(self._amdsmi)):
                self._amdsmi.amdsmi_shut_down()
            self._initialised = False
        self._devices = []
        self._availability = None
        self._started = False
