from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from meters_support import EPYC_VM, data_rows, write_cpuinfo

import wattwise.meters
from wattwise.meters import describe_hardware, uncertainty_band
from wattwise.testing import fake_nvml
from wattwise.testing.fake_nvml import FakeGpu, FakeNvml


def test_describe_hardware_with_gpus_is_json_ready(tmp_path: Path) -> None:
    gpus = [
        FakeGpu(
            name="NVIDIA H100 80GB HBM3", memory_total_bytes=80 * 2**30, power_limit_mw=700_000
        ),
        FakeGpu(
            name="NVIDIA H100 80GB HBM3", memory_total_bytes=80 * 2**30, power_limit_mw=700_000
        ),
    ]
    nvml = FakeNvml(gpus, driver_version="560.35.03")
    hw = describe_hardware(
        cpuinfo_path=write_cpuinfo(tmp_path, **EPYC_VM), nvml=nvml, total_memory_bytes=2**34
    )
    assert json.loads(json.dumps(hw)) == hw
    assert hw["accelerator"] == "gpu"
    assert hw["ram_gb"] == 16.0
    assert hw["gpus"] == [
        {
            "index": i,
            "name": "NVIDIA H100 80GB HBM3",
            "memory_mib": 81920,
            "power_limit_w": 700.0,
            "driver": "560.35.03",
        }
        for i in range(2)
    ]
    cpu = hw["cpu"]
    assert isinstance(cpu, dict)
    assert cpu["microarchitecture"] == "Zen 4"
    assert cpu["match_rule"] == "family-model"
    assert (cpu["family"], cpu["model"], cpu["threads"], cpu["sockets"]) == (25, 17, 2, 1)
    assert nvml.refcount == 0  # NVML was shut down again


def test_describe_hardware_without_gpu_says_cpu(tmp_path: Path) -> None:
    nvml = FakeNvml([], init_error=fake_nvml.NVML_ERROR_DRIVER_NOT_LOADED)
    hw = describe_hardware(cpuinfo_path=write_cpuinfo(tmp_path, **EPYC_VM), nvml=nvml)
    assert hw["gpus"] == []
    assert hw["accelerator"] == "cpu"
    assert isinstance(hw["ram_gb"], float)
    assert hw["ram_gb"] > 0


def test_uncertainty_bands_come_from_the_shipped_file() -> None:
    rows = {(r["method"], r["component"]): r for r in data_rows("meters_uncertainty.csv")}
    band, source = uncertainty_band("model", "cpu")
    assert band == float(rows["model", "cpu"]["band_fraction"])
    assert "SPECpower_ssj2008 calibration" in source
    assert uncertainty_band("counter", "gpu")[0] is None
    assert uncertainty_band("user", "cpu") == (
        None,
        "No uncertainty band is recorded for user figures of cpu.",
    )


def test_public_api_is_sorted_and_complete() -> None:
    public = {n for n in vars(wattwise.meters) if not n.startswith("_") and n != "annotations"}
    assert wattwise.meters.__all__ == sorted(wattwise.meters.__all__)
    assert set(wattwise.meters.__all__) == public
    assert {"RaplMeter", "NvmlMeter", "CpuModelMeter", "DramModelMeter", "select_meters"} <= set(
        wattwise.meters.__all__
    )


def test_import_loads_no_heavy_module() -> None:
    code = (
        "import sys, wattwise.meters; "
        "print(sorted(m for m in ('pynvml', 'psutil', 'numpy') if m in sys.modules))"
    )
    src = str(Path(wattwise.meters.__file__).parents[2])
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": src},
    )
    assert out.stdout.strip() == "[]"
