"""The fake amdsmi must not drift from the real package's API.

The real ``amdsmi`` cannot be imported without ROCm's ``libamd_smi.so``, so its functions
are read from the package's source (``amdsmi_interface.py``, installed or in a downloaded
wheel) with ``ast``, and its status codes from ``amdsmi_wrapper.py``, the way
``test_meters_fake_nvml.py`` compares the fake NVML with ``pynvml``.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import os
import zipfile
from pathlib import Path

import pytest

from wattwise.testing import fake_amdsmi
from wattwise.testing.fake_amdsmi import FakeAmdGpu, FakeAmdSmi


def _source(name: str) -> str:
    """A source file of the real amdsmi: from the installed package, or from the wheel
    that ``$AMDSMI_WHEEL`` names (``pip download --no-deps amdsmi``): installing
    amdsmi without ROCm breaks other packages' imports (``import ray`` raises KeyError)."""
    spec = importlib.util.find_spec("amdsmi")
    if spec is not None and spec.submodule_search_locations:
        folder = Path(next(iter(spec.submodule_search_locations)))
        return (folder / name).read_text(encoding="utf-8")
    wheel = os.environ.get("AMDSMI_WHEEL", "")
    if wheel and Path(wheel).is_file():
        with zipfile.ZipFile(wheel) as archive:
            return archive.read(f"amdsmi/{name}").decode("utf-8")
    pytest.skip("amdsmi is neither installed nor given as AMDSMI_WHEEL")


def _real_functions() -> dict[str, ast.FunctionDef]:
    tree = ast.parse(_source("amdsmi_interface.py"))
    return {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}


def _real_constants(path: str) -> dict[str, int]:
    tree = ast.parse(_source(path))
    out: dict[str, int] = {}
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, int)
        ):
            out[node.targets[0].id] = node.value.value
    return out


def _fake_functions() -> list[str]:
    return sorted(n for n in vars(FakeAmdSmi) if n.startswith("amdsmi_"))


def test_the_fake_implements_the_functions_wattwise_uses() -> None:
    used = {
        "amdsmi_init",
        "amdsmi_shut_down",
        "amdsmi_get_processor_handles",
        "amdsmi_get_energy_count",
        "amdsmi_get_power_info",
        "amdsmi_get_gpu_process_list",
        "amdsmi_get_gpu_asic_info",
        "amdsmi_get_power_cap_info",
        "amdsmi_get_gpu_vram_info",
        "amdsmi_get_gpu_driver_info",
        "amdsmi_get_gpu_device_uuid",
    }
    assert used <= set(_fake_functions())
    source = Path(inspect.getfile(fake_amdsmi)).parents[1] / "meters" / "_amd.py"
    called = {
        n for n in used if f"amdsmi.{n}(" in source.read_text() or f'"{n}"' in source.read_text()
    }
    assert called == used


@pytest.mark.parametrize("name", _fake_functions())
def test_every_fake_function_exists_in_amdsmi_with_the_same_parameters(name: str) -> None:
    real = _real_functions()[name]
    fake = inspect.signature(getattr(FakeAmdSmi([]), name))
    real_names = [a.arg for a in real.args.args]
    assert [p.name for p in fake.parameters.values()] == real_names
    real_defaults = [ast.unparse(d) for d in real.args.defaults]
    fake_defaults = [
        f"{type(p.default).__name__}.{p.default.name}"
        if hasattr(p.default, "name")
        else repr(p.default)
        for p in fake.parameters.values()
        if p.default is not inspect.Parameter.empty
    ]
    assert fake_defaults == real_defaults


def test_status_codes_and_init_flags_have_the_real_values() -> None:
    wrapper = _real_constants("amdsmi_wrapper.py")
    names = [n for n in vars(fake_amdsmi) if n.startswith("AMDSMI_STATUS_")]
    assert len(names) >= 6
    for name in names:
        assert getattr(fake_amdsmi, name) == wrapper[name], name
    for flag in fake_amdsmi.AmdSmiInitFlags:
        assert flag.value == wrapper[f"AMDSMI_{flag.name}"], flag


def test_return_shapes_follow_the_real_source() -> None:
    """The dict keys the fake returns are the ones the real functions build."""
    source = _source("amdsmi_interface.py")
    amdsmi = FakeAmdSmi([FakeAmdGpu(energy_uj=lambda t: 1e6, average_power_w=lambda t: 300,
                                    processes=[(42, 2**30)])])  # fmt: skip
    with pytest.raises(fake_amdsmi.AmdSmiLibraryException) as err:
        amdsmi.amdsmi_get_processor_handles()
    assert err.value.get_error_code() == fake_amdsmi.AMDSMI_STATUS_NOT_INIT
    amdsmi.amdsmi_init()
    handle = amdsmi.amdsmi_get_processor_handles()[0]
    energy = amdsmi.amdsmi_get_energy_count(handle)
    power = amdsmi.amdsmi_get_power_info(handle)
    procs = amdsmi.amdsmi_get_gpu_process_list(handle)
    for key in (*energy, *power, *procs[0], *procs[0]["memory_usage"]):
        assert f"'{key}'" in source or f'"{key}"' in source, key
    assert isinstance(energy["energy_accumulator"], int)
    assert isinstance(energy["counter_resolution"], float)
    assert power["current_socket_power"] == "N/A"  # unsupported field, as the real one
    assert procs[0]["pid"] == 42
    assert procs[0]["memory_usage"]["vram_mem"] == 2**30
