"""A fake ``amdsmi`` (AMD SMI Python package) for tests: same function names, parameters and
return shapes as the real module, for machines without an AMD GPU or ROCm.

Pass an instance wherever wattwise accepts an amdsmi module::

    from wattwise.meters import AmdSmiMeter
    from wattwise.testing.fake_amdsmi import FakeAmdGpu, FakeAmdSmi

    amdsmi = FakeAmdSmi([FakeAmdGpu(energy_uj=lambda t: int(300e6 * t))], clock=clock)
    meter = AmdSmiMeter(amdsmi=amdsmi, clock=clock)

What mirrors the real package (``amdsmi`` 6.x/7.x, ``amdsmi_interface.py``):

* ``amdsmi_init(flag=AmdSmiInitFlags.INIT_AMD_GPUS)``/``amdsmi_shut_down()``; calls before
  init raise ``AmdSmiLibraryException`` with ``AMDSMI_STATUS_NOT_INIT`` (32).
* ``amdsmi_get_processor_handles()`` returns a list of opaque handles.
* ``amdsmi_get_energy_count(processor_handle)`` returns ``{"energy_accumulator": int,
  "counter_resolution": float (µJ per count), "timestamp": int (ns)}``; before amdsmi
  6.2.1 the count was under ``"power"`` (``legacy_energy_key=True``).
* ``amdsmi_get_power_info(processor_handle)`` returns ``socket_power``,
  ``current_socket_power``, ``average_socket_power`` (W, ints) and others; a field the
  device does not support is the string ``"N/A"``.
* ``amdsmi_get_gpu_process_list(processor_handle)`` returns dicts with ``name``, ``pid``,
  ``mem``, ``engine_usage``, ``memory_usage`` (``gtt_mem``, ``cpu_mem``, ``vram_mem``
  bytes) and ``cu_occupancy``.
* ``AmdSmiLibraryException(err_code)`` has ``err_code`` and ``get_error_code()``.

``tests/meters/test_meters_fake_amdsmi.py`` checks every function here against the
installed package's source (the real module cannot be imported without ``libamd_smi.so``).
"""

from __future__ import annotations

import dataclasses
import enum
import types
from collections.abc import Callable, Sequence
from typing import Any

# amdsmi_wrapper.py status codes (the subset wattwise reacts to).
AMDSMI_STATUS_SUCCESS = 0
AMDSMI_STATUS_INVAL = 1
AMDSMI_STATUS_NOT_SUPPORTED = 2
AMDSMI_STATUS_NO_PERM = 10
AMDSMI_STATUS_NOT_FOUND = 31
AMDSMI_STATUS_NOT_INIT = 32
AMDSMI_STATUS_DRIVER_NOT_LOADED = 34
AMDSMI_STATUS_NO_DRV = 51

_ERROR_INFO = {
    AMDSMI_STATUS_INVAL: "AMDSMI_STATUS_INVAL - Invalid parameters",
    AMDSMI_STATUS_NOT_SUPPORTED: "AMDSMI_STATUS_NOT_SUPPORTED - Feature not supported",
    AMDSMI_STATUS_NO_PERM: "AMDSMI_STATUS_NO_PERM - Permission Denied",
    AMDSMI_STATUS_NOT_FOUND: "AMDSMI_STATUS_NOT_FOUND - Device Not found",
    AMDSMI_STATUS_NOT_INIT: "AMDSMI_STATUS_NOT_INIT - Device not initialized",
    AMDSMI_STATUS_DRIVER_NOT_LOADED: "AMDSMI_STATUS_DRIVER_NOT_LOADED - Driver not loaded",
    AMDSMI_STATUS_NO_DRV: "AMDSMI_STATUS_NO_DRV - No Energy and HSMP driver present",
}


class AmdSmiInitFlags(enum.IntEnum):
    """``amdsmi.AmdSmiInitFlags`` (values of ``amdsmi_wrapper.AMDSMI_INIT_*``)."""

    INIT_ALL_PROCESSORS = 4294967295
    INIT_AMD_CPUS = 1
    INIT_AMD_GPUS = 2
    INIT_NON_AMD_CPUS = 4
    INIT_NON_AMD_GPUS = 8
    INIT_AMD_APUS = 3


_InitFlags = AmdSmiInitFlags


class AmdSmiException(Exception):  # noqa: N818 - the real name
    """Base exception of amdsmi."""


class AmdSmiLibraryException(AmdSmiException):
    """A failed library call, with the status in ``err_code`` (as amdsmi_exception.py)."""

    def __init__(self, err_code: int) -> None:
        err_code = abs(err_code)
        super().__init__(err_code)
        self.err_code = err_code
        self.err_info = _ERROR_INFO.get(
            err_code, "AMDSMI_STATUS_UNKNOWN_ERROR - An unknown error occurred"
        )

    def __str__(self) -> str:
        return f"Error code:\n\t{self.err_code} | {self.err_info}"

    def get_error_code(self) -> int:
        """The status code."""
        return self.err_code


@dataclasses.dataclass(frozen=True)
class FakeProcessorHandle:
    """Stands in for ``amdsmi_wrapper.amdsmi_processor_handle``."""

    index: int


@dataclasses.dataclass
class FakeAmdGpu:
    """One fake AMD GPU (or one die of an MI250/MI250X).

    Attributes:
        market_name: ``amdsmi_get_gpu_asic_info()["market_name"]``.
        energy_uj: Energy since driver load in µJ as a function of the fake clock, or None
            when ``amdsmi_get_energy_count`` is not supported on the device.
        counter_resolution: µJ per count of the energy accumulator (15.3 on MI200/MI300
            per the amdsmi documentation's examples; any positive float works here).
        average_power_w / current_power_w: ``amdsmi_get_power_info`` fields in W, a
            function of the fake clock, or None for "N/A".
        processes: ``amdsmi_get_gpu_process_list`` entries as ``(pid, vram bytes)``;
            None makes the call raise NOT_SUPPORTED.
        vram_mb: ``amdsmi_get_gpu_vram_info()["vram_size"]`` (MB).
        power_cap_uw: ``amdsmi_get_power_cap_info()["power_cap"]`` (µW).
        uuid: ``amdsmi_get_gpu_device_uuid``.
        lost: Every device call raises NOT_FOUND.
    """

    market_name: str = "AMD Instinct MI300X"
    energy_uj: Callable[[float], float] | None = None
    counter_resolution: float = 15.3
    average_power_w: Callable[[float], float] | None = None
    current_power_w: Callable[[float], float] | None = None
    processes: Sequence[tuple[int, int]] | None = ()
    vram_mb: int = 196592
    power_cap_uw: int = 750_000_000
    uuid: str = "00ff74a1-0000-1000-80ab-2b3c6f9d1a10"
    lost: bool = False


class FakeAmdSmi(types.ModuleType):
    """A module object that answers like ``amdsmi`` for the given fake GPUs.

    Args:
        gpus: The devices, in amdsmi's enumeration order.
        init_error: A status code ``amdsmi_init`` raises, or None.
        driver_version: ``amdsmi_get_gpu_driver_info()["driver_version"]``.
        legacy_energy_key: Name the count ``"power"`` as amdsmi before 6.2.1 did.
        clock: Seconds; energy and power functions are evaluated at ``clock()``.
    """

    AmdSmiInitFlags: type[AmdSmiInitFlags] = AmdSmiInitFlags
    AmdSmiException = AmdSmiException
    AmdSmiLibraryException = AmdSmiLibraryException

    def __init__(
        self,
        gpus: Sequence[FakeAmdGpu] = (),
        *,
        init_error: int | None = None,
        driver_version: str = "6.10.5",
        legacy_energy_key: bool = False,
        clock: Callable[[], float] = lambda: 0.0,
    ) -> None:
        super().__init__("amdsmi", "Fake amdsmi (wattwise.testing.fake_amdsmi).")
        self.gpus = list(gpus)
        self.init_error = init_error
        self.driver_version = driver_version
        self.legacy_energy_key = legacy_energy_key
        self.clock = clock
        self.initialised = 0
        self.shutdowns = 0

    # -- library -------------------------------------------------------------------------

    def amdsmi_init(self, flag: _InitFlags = _InitFlags.INIT_AMD_GPUS) -> None:
        """Initialise the library."""
        if self.init_error is not None:
            raise AmdSmiLibraryException(self.init_error)
        self.initialised += 1

    def amdsmi_shut_down(self) -> None:
        """Shut the library down."""
        self._check_init()
        self.initialised -= 1
        self.shutdowns += 1

    def amdsmi_get_processor_handles(self) -> list[FakeProcessorHandle]:
        """Handles of every AMD GPU."""
        self._check_init()
        return [FakeProcessorHandle(i) for i in range(len(self.gpus))]

    # -- device --------------------------------------------------------------------------

    def _check_init(self) -> None:
        if self.initialised <= 0:
            raise AmdSmiLibraryException(AMDSMI_STATUS_NOT_INIT)

    def _gpu(self, handle: FakeProcessorHandle) -> FakeAmdGpu:
        self._check_init()
        gpu = self.gpus[handle.index]
        if gpu.lost:
            raise AmdSmiLibraryException(AMDSMI_STATUS_NOT_FOUND)
        return gpu

    def amdsmi_get_gpu_asic_info(self, processor_handle: FakeProcessorHandle) -> dict[str, Any]:
        """ASIC facts; wattwise reads ``market_name``."""
        gpu = self._gpu(processor_handle)
        return {"market_name": gpu.market_name, "vendor_id": 0x1002, "vendor_name": "AMD"}

    def amdsmi_get_energy_count(self, processor_handle: FakeProcessorHandle) -> dict[str, Any]:
        """The energy accumulator, its resolution (µJ per count) and a timestamp (ns)."""
        gpu = self._gpu(processor_handle)
        if gpu.energy_uj is None:
            raise AmdSmiLibraryException(AMDSMI_STATUS_NOT_SUPPORTED)
        count = int(gpu.energy_uj(self.clock()) / gpu.counter_resolution)
        key = "power" if self.legacy_energy_key else "energy_accumulator"
        return {
            key: count,
            "counter_resolution": gpu.counter_resolution,
            "timestamp": int(self.clock() * 1e9),
        }

    def amdsmi_get_power_info(self, processor_handle: FakeProcessorHandle) -> dict[str, Any]:
        """Power in W; unsupported fields are ``"N/A"``."""
        gpu = self._gpu(processor_handle)
        now = self.clock()
        avg = int(gpu.average_power_w(now)) if gpu.average_power_w else "N/A"
        cur = int(gpu.current_power_w(now)) if gpu.current_power_w else "N/A"
        return {
            "socket_power": avg if avg != "N/A" else cur,
            "current_socket_power": cur,
            "average_socket_power": avg,
            "gfx_voltage": "N/A",
            "soc_voltage": "N/A",
            "mem_voltage": "N/A",
            "power_limit": gpu.power_cap_uw // 1_000_000,
        }

    def amdsmi_get_gpu_process_list(
        self, processor_handle: FakeProcessorHandle
    ) -> list[dict[str, Any]]:
        """Processes using the device."""
        gpu = self._gpu(processor_handle)
        if gpu.processes is None:
            raise AmdSmiLibraryException(AMDSMI_STATUS_NOT_SUPPORTED)
        return [
            {
                "name": "python",
                "pid": pid,
                "mem": vram,
                "engine_usage": {"gfx": 0, "enc": 0},
                "memory_usage": {"gtt_mem": 0, "cpu_mem": 0, "vram_mem": vram},
                "cu_occupancy": "N/A",
            }
            for pid, vram in gpu.processes
        ]

    def amdsmi_get_power_cap_info(self, processor_handle: FakeProcessorHandle) -> dict[str, Any]:
        """Power caps in µW."""
        gpu = self._gpu(processor_handle)
        cap = gpu.power_cap_uw
        return {
            "power_cap": cap,
            "default_power_cap": cap,
            "dpm_cap": 0,
            "min_power_cap": 0,
            "max_power_cap": cap,
        }

    def amdsmi_get_gpu_vram_info(self, processor_handle: FakeProcessorHandle) -> dict[str, Any]:
        """VRAM facts; ``vram_size`` in MB."""
        gpu = self._gpu(processor_handle)
        return {"vram_type": 0, "vram_vendor": "", "vram_size": gpu.vram_mb}

    def amdsmi_get_gpu_driver_info(self, processor_handle: FakeProcessorHandle) -> dict[str, Any]:
        """Driver name, version and date."""
        self._gpu(processor_handle)
        return {
            "driver_name": "amdgpu",
            "driver_version": self.driver_version,
            "driver_date": "N/A",
        }

    def amdsmi_get_gpu_device_uuid(self, processor_handle: FakeProcessorHandle) -> str:
        """Device UUID."""
        return self._gpu(processor_handle).uuid
