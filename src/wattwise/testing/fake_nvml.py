"""A fake ``pynvml`` (nvidia-ml-py) for tests: same function names, arguments and return types.

Pass an instance wherever wattwise accepts an NVML module::

    from wattwise.meters import NvmlMeter
    from wattwise.testing.fake_nvml import FakeGpu, FakeNvml

    clock = ManualClock()
    nvml = FakeNvml([FakeGpu(energy_mj=lambda t: int(250_000 * t))], clock=clock)
    meter = NvmlMeter(nvml=nvml, clock=clock)

What mirrors the real module (``nvidia-ml-py`` 12.x/13.x ``pynvml.py``):

* ``nvmlInit``/``nvmlShutdown`` keep a reference count; any device call before
  ``nvmlInit`` raises ``NVMLError(NVML_ERROR_UNINITIALIZED)``.
* ``nvmlDeviceGetName``, ``nvmlDeviceGetUUID`` and ``nvmlSystemGetDriverVersion`` return
  ``str``; ``nvmlDeviceGetTotalEnergyConsumption`` returns ``int`` millijoules,
  ``nvmlDeviceGetPowerUsage`` and ``nvmlDeviceGetEnforcedPowerLimit`` ``int`` milliwatts;
  ``nvmlDeviceGetMemoryInfo`` an object with ``total``/``free``/``used`` bytes;
  ``nvmlDeviceGetComputeRunningProcesses`` objects with ``pid``, ``usedGpuMemory``,
  ``gpuInstanceId``, ``computeInstanceId``.
* ``NVMLError(value)`` has ``.value``, returns the per-code subclass
  (``NVMLError_NotSupported``…) and prints NVML's error string.

``tests/meters/test_meters_fake_nvml.py`` checks every function and constant defined here
against the installed real module.
"""

# The names below mirror pynvml exactly (camelCase functions, NVMLError_* classes).
# ruff: noqa: N802, N815

from __future__ import annotations

import dataclasses
import types
from collections.abc import Callable, Sequence
from typing import ClassVar, TypeAlias

NVML_SUCCESS = 0
NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_ALREADY_INITIALIZED = 5
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_INSUFFICIENT_SIZE = 7
NVML_ERROR_INSUFFICIENT_POWER = 8
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_TIMEOUT = 10
NVML_ERROR_IRQ_ISSUE = 11
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_FUNCTION_NOT_FOUND = 13
NVML_ERROR_CORRUPTED_INFOROM = 14
NVML_ERROR_GPU_IS_LOST = 15
NVML_ERROR_RESET_REQUIRED = 16
NVML_ERROR_OPERATING_SYSTEM = 17
NVML_ERROR_LIB_RM_VERSION_MISMATCH = 18
NVML_ERROR_IN_USE = 19
NVML_ERROR_MEMORY = 20
NVML_ERROR_NO_DATA = 21
NVML_ERROR_UNKNOWN = 999
NVML_DEVICE_ARCH_KEPLER = 2
NVML_DEVICE_ARCH_MAXWELL = 3
NVML_DEVICE_ARCH_PASCAL = 4
NVML_DEVICE_ARCH_VOLTA = 5
NVML_DEVICE_ARCH_TURING = 6
NVML_DEVICE_ARCH_AMPERE = 7
NVML_DEVICE_ARCH_ADA = 8
NVML_DEVICE_ARCH_HOPPER = 9
NVML_DEVICE_ARCH_BLACKWELL = 10

# NVML's own strings (pynvml NVMLError._errcode_to_string).
_ERROR_STRINGS: dict[int, str] = {
    NVML_ERROR_UNINITIALIZED: "Uninitialized",
    NVML_ERROR_INVALID_ARGUMENT: "Invalid Argument",
    NVML_ERROR_NOT_SUPPORTED: "Not Supported",
    NVML_ERROR_NO_PERMISSION: "Insufficient Permissions",
    NVML_ERROR_ALREADY_INITIALIZED: "Already Initialized",
    NVML_ERROR_NOT_FOUND: "Not Found",
    NVML_ERROR_INSUFFICIENT_SIZE: "Insufficient Size",
    NVML_ERROR_INSUFFICIENT_POWER: "Insufficient External Power",
    NVML_ERROR_DRIVER_NOT_LOADED: "Driver Not Loaded",
    NVML_ERROR_TIMEOUT: "Timeout",
    NVML_ERROR_IRQ_ISSUE: "Interrupt Request Issue",
    NVML_ERROR_LIBRARY_NOT_FOUND: "NVML Shared Library Not Found",
    NVML_ERROR_FUNCTION_NOT_FOUND: "Function Not Found",
    NVML_ERROR_CORRUPTED_INFOROM: "Corrupted infoROM",
    NVML_ERROR_GPU_IS_LOST: "GPU is lost",
    NVML_ERROR_RESET_REQUIRED: "GPU requires restart",
    NVML_ERROR_OPERATING_SYSTEM: "The operating system has blocked the request.",
    NVML_ERROR_LIB_RM_VERSION_MISMATCH: "RM has detected an NVML/RM version mismatch.",
    NVML_ERROR_MEMORY: "Insufficient Memory",
    NVML_ERROR_UNKNOWN: "Unknown Error",
}


class NVMLError(Exception):
    """NVML failure with its return code in ``.value``, like ``pynvml.NVMLError``."""

    _value_class: ClassVar[dict[int, type[NVMLError]]] = {}
    value: int

    def __new__(cls, value: int) -> NVMLError:
        """Build the per-code subclass when one exists, as pynvml does."""
        if cls is NVMLError:
            cls = NVMLError._value_class.get(value, cls)
        obj = Exception.__new__(cls)
        obj.value = value
        return obj

    def __str__(self) -> str:
        """NVML's error string for the code."""
        return _ERROR_STRINGS.get(self.value, f"NVML Error with code {self.value}")


def _subclass(name: str, value: int) -> type[NVMLError]:
    def new(cls: type[NVMLError], *args: object) -> NVMLError:
        obj = Exception.__new__(cls)
        obj.value = value
        return obj

    cls = type(name, (NVMLError,), {"__new__": new, "__module__": __name__})
    NVMLError._value_class[value] = cls
    return cls


NVMLError_Uninitialized = _subclass("NVMLError_Uninitialized", NVML_ERROR_UNINITIALIZED)
NVMLError_NotSupported = _subclass("NVMLError_NotSupported", NVML_ERROR_NOT_SUPPORTED)
NVMLError_NoPermission = _subclass("NVMLError_NoPermission", NVML_ERROR_NO_PERMISSION)
NVMLError_DriverNotLoaded = _subclass("NVMLError_DriverNotLoaded", NVML_ERROR_DRIVER_NOT_LOADED)
NVMLError_LibraryNotFound = _subclass("NVMLError_LibraryNotFound", NVML_ERROR_LIBRARY_NOT_FOUND)
NVMLError_FunctionNotFound = _subclass("NVMLError_FunctionNotFound", NVML_ERROR_FUNCTION_NOT_FOUND)
NVMLError_GpuIsLost = _subclass("NVMLError_GpuIsLost", NVML_ERROR_GPU_IS_LOST)
NVMLError_InvalidArgument = _subclass("NVMLError_InvalidArgument", NVML_ERROR_INVALID_ARGUMENT)
NVMLError_Unknown = _subclass("NVMLError_Unknown", NVML_ERROR_UNKNOWN)


@dataclasses.dataclass
class FakeMemory:
    """What ``nvmlDeviceGetMemoryInfo`` returns (``c_nvmlMemory_t``): bytes."""

    total: int
    free: int
    used: int


@dataclasses.dataclass
class FakeProcessInfo:
    """One entry of ``nvmlDeviceGetComputeRunningProcesses``."""

    pid: int
    usedGpuMemory: int | None = None
    gpuInstanceId: int = 0xFFFFFFFF
    computeInstanceId: int = 0xFFFFFFFF


@dataclasses.dataclass(frozen=True)
class FakeHandle:
    """Stands in for ``c_nvmlDevice_t``."""

    index: int


PowerSource: TypeAlias = int | Sequence[int] | Callable[[float], int] | None


@dataclasses.dataclass
class FakeGpu:
    """One fake GPU. ``None`` for a figure makes its call raise NVML_ERROR_NOT_SUPPORTED.

    Attributes:
        name: ``nvmlDeviceGetName``.
        uuid: ``nvmlDeviceGetUUID``.
        memory_total_bytes: ``nvmlDeviceGetMemoryInfo().total``.
        memory_used_bytes: ``nvmlDeviceGetMemoryInfo().used``.
        power_limit_mw: ``nvmlDeviceGetEnforcedPowerLimit``, mW.
        power_mw: ``nvmlDeviceGetPowerUsage`` in mW: a constant, a trace replayed one value
            per call (the last one repeats), or a function of the fake clock's time.
        energy_mj: ``nvmlDeviceGetTotalEnergyConsumption`` in mJ as a function of the fake
            clock's time; None models a pre-Volta GPU without the counter.
        processes: ``nvmlDeviceGetComputeRunningProcesses``.
        lost: When True every device call raises NVML_ERROR_GPU_IS_LOST.
        architecture: ``nvmlDeviceGetArchitecture`` (``NVML_DEVICE_ARCH_*``; 7 = Ampere, the
            A100's); None raises NVML_ERROR_NOT_SUPPORTED.
    """

    name: str = "NVIDIA A100-SXM4-40GB"
    uuid: str = "GPU-00000000-0000-0000-0000-000000000000"
    memory_total_bytes: int | None = 40 * 1024**3
    memory_used_bytes: int = 0
    power_limit_mw: int | None = 400_000
    power_mw: PowerSource = 100_000
    energy_mj: Callable[[float], int] | None = None
    processes: Sequence[FakeProcessInfo] = ()
    lost: bool = False
    architecture: int | None = 7
    _power_calls: int = dataclasses.field(default=0, init=False, repr=False)


class FakeNvml(types.ModuleType):
    """A module object that answers like ``pynvml`` for the given fake GPUs.

    Args:
        gpus: The devices, NVML index = position.
        init_error: An NVML error code that ``nvmlInit`` raises (e.g.
            ``NVML_ERROR_DRIVER_NOT_LOADED``), or None.
        driver_version: ``nvmlSystemGetDriverVersion``.
        clock: Seconds; energy and power functions are evaluated at ``clock()``.
    """

    NVMLError = NVMLError
    NVMLError_Uninitialized = NVMLError_Uninitialized
    NVMLError_NotSupported = NVMLError_NotSupported
    NVMLError_NoPermission = NVMLError_NoPermission
    NVMLError_DriverNotLoaded = NVMLError_DriverNotLoaded
    NVMLError_LibraryNotFound = NVMLError_LibraryNotFound
    NVMLError_FunctionNotFound = NVMLError_FunctionNotFound
    NVMLError_GpuIsLost = NVMLError_GpuIsLost
    NVMLError_InvalidArgument = NVMLError_InvalidArgument
    NVMLError_Unknown = NVMLError_Unknown
    NVML_SUCCESS = NVML_SUCCESS
    NVML_ERROR_UNINITIALIZED = NVML_ERROR_UNINITIALIZED
    NVML_ERROR_INVALID_ARGUMENT = NVML_ERROR_INVALID_ARGUMENT
    NVML_ERROR_NOT_SUPPORTED = NVML_ERROR_NOT_SUPPORTED
    NVML_ERROR_NO_PERMISSION = NVML_ERROR_NO_PERMISSION
    NVML_ERROR_ALREADY_INITIALIZED = NVML_ERROR_ALREADY_INITIALIZED
    NVML_ERROR_NOT_FOUND = NVML_ERROR_NOT_FOUND
    NVML_ERROR_INSUFFICIENT_SIZE = NVML_ERROR_INSUFFICIENT_SIZE
    NVML_ERROR_INSUFFICIENT_POWER = NVML_ERROR_INSUFFICIENT_POWER
    NVML_ERROR_DRIVER_NOT_LOADED = NVML_ERROR_DRIVER_NOT_LOADED
    NVML_ERROR_TIMEOUT = NVML_ERROR_TIMEOUT
    NVML_ERROR_IRQ_ISSUE = NVML_ERROR_IRQ_ISSUE
    NVML_ERROR_LIBRARY_NOT_FOUND = NVML_ERROR_LIBRARY_NOT_FOUND
    NVML_ERROR_FUNCTION_NOT_FOUND = NVML_ERROR_FUNCTION_NOT_FOUND
    NVML_ERROR_CORRUPTED_INFOROM = NVML_ERROR_CORRUPTED_INFOROM
    NVML_ERROR_GPU_IS_LOST = NVML_ERROR_GPU_IS_LOST
    NVML_ERROR_RESET_REQUIRED = NVML_ERROR_RESET_REQUIRED
    NVML_ERROR_OPERATING_SYSTEM = NVML_ERROR_OPERATING_SYSTEM
    NVML_ERROR_LIB_RM_VERSION_MISMATCH = NVML_ERROR_LIB_RM_VERSION_MISMATCH
    NVML_ERROR_IN_USE = NVML_ERROR_IN_USE
    NVML_ERROR_MEMORY = NVML_ERROR_MEMORY
    NVML_ERROR_NO_DATA = NVML_ERROR_NO_DATA
    NVML_ERROR_UNKNOWN = NVML_ERROR_UNKNOWN
    NVML_DEVICE_ARCH_KEPLER = NVML_DEVICE_ARCH_KEPLER
    NVML_DEVICE_ARCH_MAXWELL = NVML_DEVICE_ARCH_MAXWELL
    NVML_DEVICE_ARCH_PASCAL = NVML_DEVICE_ARCH_PASCAL
    NVML_DEVICE_ARCH_VOLTA = NVML_DEVICE_ARCH_VOLTA
    NVML_DEVICE_ARCH_TURING = NVML_DEVICE_ARCH_TURING
    NVML_DEVICE_ARCH_AMPERE = NVML_DEVICE_ARCH_AMPERE
    NVML_DEVICE_ARCH_ADA = NVML_DEVICE_ARCH_ADA
    NVML_DEVICE_ARCH_HOPPER = NVML_DEVICE_ARCH_HOPPER
    NVML_DEVICE_ARCH_BLACKWELL = NVML_DEVICE_ARCH_BLACKWELL

    def __init__(
        self,
        gpus: Sequence[FakeGpu] = (),
        *,
        init_error: int | None = None,
        driver_version: str = "550.54.15",
        clock: Callable[[], float] = lambda: 0.0,
    ) -> None:
        super().__init__("pynvml", "Fake pynvml (wattwise.testing.fake_nvml).")
        self.gpus = list(gpus)
        self.init_error = init_error
        self.driver_version = driver_version
        self.clock = clock
        self.refcount = 0
        self.init_calls = 0
        self.shutdown_calls = 0

    # -- library ---------------------------------------------------------------------

    def nvmlInit(self) -> None:
        """Initialise (reference counted)."""
        self.init_calls += 1
        if self.init_error is not None:
            raise NVMLError(self.init_error)
        self.refcount += 1

    def nvmlShutdown(self) -> None:
        """Drop one reference; raises NVML_ERROR_UNINITIALIZED when there is none."""
        self._check_init()
        self.shutdown_calls += 1
        self.refcount -= 1

    def nvmlSystemGetDriverVersion(self) -> str:
        """Driver version string."""
        self._check_init()
        return self.driver_version

    def nvmlDeviceGetCount(self) -> int:
        """Number of devices."""
        self._check_init()
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeHandle:
        """Handle of device ``index``."""
        self._check_init()
        if not 0 <= index < len(self.gpus):
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        return FakeHandle(index)

    # -- device ----------------------------------------------------------------------

    def _check_init(self) -> None:
        if self.refcount <= 0:
            raise NVMLError(NVML_ERROR_UNINITIALIZED)

    def _gpu(self, handle: FakeHandle) -> FakeGpu:
        self._check_init()
        gpu = self.gpus[handle.index]
        if gpu.lost:
            raise NVMLError(NVML_ERROR_GPU_IS_LOST)
        return gpu

    def nvmlDeviceGetName(self, handle: FakeHandle) -> str:
        """Product name (``str`` in current nvidia-ml-py)."""
        return self._gpu(handle).name

    def nvmlDeviceGetUUID(self, handle: FakeHandle) -> str:
        """Device UUID."""
        return self._gpu(handle).uuid

    def nvmlDeviceGetMemoryInfo(
        self, handle: FakeHandle, version: int | None = None
    ) -> FakeMemory:
        """Framebuffer memory in bytes."""
        gpu = self._gpu(handle)
        if gpu.memory_total_bytes is None:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        used = gpu.memory_used_bytes
        return FakeMemory(
            total=gpu.memory_total_bytes, free=gpu.memory_total_bytes - used, used=used
        )

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: FakeHandle) -> int:
        """Enforced power limit, mW."""
        gpu = self._gpu(handle)
        if gpu.power_limit_mw is None:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return gpu.power_limit_mw

    def nvmlDeviceGetPowerUsage(self, handle: FakeHandle) -> int:
        """Current board power, mW."""
        gpu = self._gpu(handle)
        source = gpu.power_mw
        if source is None:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        if isinstance(source, int):
            return source
        if callable(source):
            return int(source(self.clock()))
        value = source[min(gpu._power_calls, len(source) - 1)]
        gpu._power_calls += 1
        return int(value)

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: FakeHandle) -> int:
        """Energy since the driver was loaded, mJ (Volta and later)."""
        gpu = self._gpu(handle)
        if gpu.energy_mj is None:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return int(gpu.energy_mj(self.clock()))

    def nvmlDeviceGetArchitecture(self, device: FakeHandle) -> int:
        """``NVML_DEVICE_ARCH_*`` of the device."""
        gpu = self._gpu(device)
        if gpu.architecture is None:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return gpu.architecture

    def nvmlDeviceGetComputeRunningProcesses(self, handle: FakeHandle) -> list[FakeProcessInfo]:
        """Compute processes on the device."""
        return list(self._gpu(handle).processes)
