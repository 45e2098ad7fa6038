"""The fake NVML must not drift from the real nvidia-ml-py API."""

from __future__ import annotations

import inspect

import pytest

from wattwise.testing import fake_nvml
from wattwise.testing.fake_nvml import FakeGpu, FakeNvml

pynvml = pytest.importorskip("pynvml")


def _fake_functions() -> list[str]:
    return sorted(n for n in vars(FakeNvml) if n.startswith("nvml"))


def test_the_fake_implements_the_functions_wattwise_uses() -> None:
    assert {
        "nvmlInit",
        "nvmlShutdown",
        "nvmlDeviceGetCount",
        "nvmlDeviceGetHandleByIndex",
        "nvmlDeviceGetName",
        "nvmlDeviceGetTotalEnergyConsumption",
        "nvmlDeviceGetPowerUsage",
        "nvmlDeviceGetEnforcedPowerLimit",
        "nvmlDeviceGetMemoryInfo",
        "nvmlSystemGetDriverVersion",
        "nvmlDeviceGetUUID",
        "nvmlDeviceGetComputeRunningProcesses",
    } <= set(_fake_functions())


@pytest.mark.parametrize("name", _fake_functions())
def test_every_fake_function_exists_in_pynvml_with_the_same_parameters(name: str) -> None:
    real = getattr(pynvml, name)
    fake = getattr(FakeNvml([]), name)  # bound: self is dropped
    real_params = [(p.name, p.default) for p in inspect.signature(real).parameters.values()]
    fake_params = [(p.name, p.default) for p in inspect.signature(fake).parameters.values()]
    assert fake_params == real_params


def test_every_constant_has_the_real_value() -> None:
    names = [n for n in vars(fake_nvml) if n.startswith("NVML_")]
    assert len(names) > 20
    for name in names:
        assert getattr(fake_nvml, name) == getattr(pynvml, name), name
        assert getattr(FakeNvml, name) == getattr(pynvml, name), name


@pytest.mark.parametrize(
    "code",
    [
        fake_nvml.NVML_ERROR_NOT_SUPPORTED,
        fake_nvml.NVML_ERROR_DRIVER_NOT_LOADED,
        fake_nvml.NVML_ERROR_LIBRARY_NOT_FOUND,
        fake_nvml.NVML_ERROR_NO_PERMISSION,
        fake_nvml.NVML_ERROR_GPU_IS_LOST,
    ],
)
def test_errors_carry_value_subclass_and_message_like_pynvml(code: int) -> None:
    fake_err = fake_nvml.NVMLError(code)
    real_err = pynvml.NVMLError(code)
    assert fake_err.value == real_err.value == code
    assert type(fake_err).__name__ == type(real_err).__name__
    assert isinstance(fake_err, fake_nvml.NVMLError)
    assert str(fake_err) == str(real_err)


def test_return_types_follow_pynvml() -> None:
    gpu = FakeGpu(energy_mj=lambda t: 1234, processes=[fake_nvml.FakeProcessInfo(pid=42)])
    nvml = FakeNvml([gpu])
    with pytest.raises(fake_nvml.NVMLError) as err:
        nvml.nvmlDeviceGetCount()
    assert err.value.value == fake_nvml.NVML_ERROR_UNINITIALIZED
    nvml.nvmlInit()
    handle = nvml.nvmlDeviceGetHandleByIndex(0)
    assert isinstance(nvml.nvmlDeviceGetName(handle), str)
    assert isinstance(nvml.nvmlDeviceGetUUID(handle), str)
    assert isinstance(nvml.nvmlSystemGetDriverVersion(), str)
    assert nvml.nvmlDeviceGetTotalEnergyConsumption(handle) == 1234
    assert isinstance(nvml.nvmlDeviceGetPowerUsage(handle), int)
    memory = nvml.nvmlDeviceGetMemoryInfo(handle)
    assert memory.total == memory.free + memory.used
    procs = nvml.nvmlDeviceGetComputeRunningProcesses(handle)
    assert [p.pid for p in procs] == [42]
    assert {"pid", "usedGpuMemory", "gpuInstanceId", "computeInstanceId"} <= set(vars(procs[0]))
    old_gpu = FakeNvml([FakeGpu(energy_mj=None)])
    old_gpu.nvmlInit()
    with pytest.raises(fake_nvml.NVMLError_NotSupported) as unsupported:
        old_gpu.nvmlDeviceGetTotalEnergyConsumption(old_gpu.nvmlDeviceGetHandleByIndex(0))
    assert unsupported.value.value == pynvml.NVML_ERROR_NOT_SUPPORTED
