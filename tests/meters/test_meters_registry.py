"""The meter registry: built-ins, third-party meters through a real installed entry point,
run-time registration, and a system-on-chip component (npu) flowing through selection."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from meters_support import EPYC_VM, write_cpuinfo

from wattwise.exceptions import InvalidParameterError
from wattwise.meters import (
    COMPONENT_ATTRIBUTION,
    COMPONENT_LABELS,
    COMPONENTS,
    ENTRY_POINT_GROUP,
    BaseMeter,
    GpuMeter,
    describe_hardware,
    describe_meters,
    meter_entries,
    probe_all,
    register_meter,
    reload_plugins,
    select_meters,
    unregister_meter,
)
from wattwise.meters._registry import check_meter_class
from wattwise.testing import fake_nvml
from wattwise.testing.fake_nvml import FakeNvml

PLUGIN = '''
from __future__ import annotations

from wattwise.meters import Availability, BaseMeter, MeterInfo


class AcmeNpuMeter(BaseMeter):
    """A third-party meter: the neural engine of an imaginary accelerator card."""

    name = "npu-acme"
    method = "counter"
    covers = ("npu",)
    preference = 20
    way_out = "leave 'npu-acme' out of meters"

    def __init__(self) -> None:
        self._reads = 0

    def _probe(self) -> Availability:
        return Availability(True, "Acme NPU counter found.")

    def components(self):
        return ("npu",)

    def read(self) -> dict[str, float]:
        self._reads += 1
        return {"npu:0": 2.5 * (self._reads - 1)}

    def info(self) -> MeterInfo:
        return MeterInfo(name=self.name, method="counter", source="acme counter")

    def device_processes(self):
        return {"npu:0": None}

    def devices(self):
        return []


class NotAMeter:
    name = "npu-broken"
'''


@pytest.fixture
def installed_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A distribution installed the way pip leaves it: a module plus its .dist-info folder
    with METADATA and entry_points.txt, on sys.path."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "acme_wattwise.py").write_text(PLUGIN)
    dist = site / "acme_wattwise-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-wattwise\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        textwrap.dedent(
            f"""\
            [{ENTRY_POINT_GROUP}]
            npu-acme = acme_wattwise:AcmeNpuMeter
            npu-broken = acme_wattwise:NotAMeter
            npu-missing = acme_wattwise_gone:Meter
            """
        )
    )
    monkeypatch.syspath_prepend(str(site))
    reload_plugins()
    yield site
    sys.modules.pop("acme_wattwise", None)
    reload_plugins()


@pytest.fixture
def cpuinfo(tmp_path: Path) -> Path:
    return write_cpuinfo(tmp_path, **EPYC_VM)


def _no_gpu() -> FakeNvml:
    return FakeNvml([], init_error=fake_nvml.NVML_ERROR_LIBRARY_NOT_FOUND)


def test_built_ins_are_registered_in_doctor_order() -> None:
    names = [e.name for e in meter_entries() if e.origin == "built-in"]
    assert names == ["cpu-rapl", "cpu-model", "dram-model", "gpu-nvml", "gpu-amdsmi", "soc-apple"]
    for entry in meter_entries():
        if entry.cls is not None:
            assert check_meter_class(entry.cls) == "", entry.name


def test_an_installed_entry_point_is_selected_for_its_component(
    installed_plugin: Path, tmp_path: Path, cpuinfo: Path
) -> None:
    entries = {e.name: e for e in meter_entries()}
    assert entries["npu-acme"].cls is not None
    assert entries["npu-acme"].origin == "entry point acme_wattwise:AcmeNpuMeter (acme-wattwise)"
    selection = select_meters(rapl_root=tmp_path / "absent", nvml=_no_gpu(), cpuinfo_path=cpuinfo)
    assert [m.name for m in selection.meters] == ["cpu-model", "dram-model", "npu-acme"]
    npu = selection.meters[-1]
    assert isinstance(npu, GpuMeter)  # it declares device_processes() and devices()
    assert npu.read() == {"npu:0": 0.0}
    assert npu.read() == {"npu:0": 2.5}
    named = select_meters(["cpu-model", "npu-acme"], cpuinfo_path=cpuinfo)
    assert [m.name for m in named.meters] == ["cpu-model", "npu-acme"]


def test_broken_plugins_are_listed_with_why_and_never_stop_selection(
    installed_plugin: Path, tmp_path: Path, cpuinfo: Path
) -> None:
    probes = dict(probe_all(rapl_root=tmp_path / "absent", nvml=_no_gpu(), cpuinfo_path=cpuinfo))
    assert probes["npu-acme"].ok
    broken = probes["npu-broken"]
    assert not broken.ok
    assert "is not a subclass of wattwise.meters.BaseMeter" in broken.reason
    assert broken.hint == "Fix or uninstall the package that declares it."
    missing = probes["npu-missing"]
    assert "loading it failed: ModuleNotFoundError" in missing.reason
    with pytest.raises(InvalidParameterError, match="Unknown meter 'npu-broken'"):
        select_meters(["npu-broken"])
    described = {
        d["meter"]: d
        for d in describe_meters(
            rapl_root=tmp_path / "absent", nvml=_no_gpu(), cpuinfo_path=cpuinfo
        )
    }
    assert described["npu-acme"]["covers"] == ["npu"]
    assert described["npu-acme"]["components"] == ["npu"]


def test_run_time_registration_and_its_rules(cpuinfo: Path) -> None:
    class LabMeter(BaseMeter):
        name = "gpu-lab"
        method = "sampled"
        covers = ("gpu",)
        preference = 5

        def _probe(self):  # type: ignore[no-untyped-def]
            from wattwise.meters import Availability

            return Availability(True, "lab power meter on the bench.")

        def components(self):  # type: ignore[no-untyped-def]
            return ("gpu",)

        def read(self) -> dict[str, float]:
            return {"gpu:0": 1.0}

        def info(self):  # type: ignore[no-untyped-def]
            from wattwise.meters import MeterInfo

            return MeterInfo(name=self.name, method="sampled", source="bench meter")

    register_meter(LabMeter)
    try:
        selection = select_meters(nvml=_no_gpu(), cpuinfo_path=cpuinfo)
        assert "gpu-lab" in [m.name for m in selection.meters]
        with pytest.raises(
            InvalidParameterError, match="'gpu-nvml' and 'gpu-lab' both measure gpu"
        ):
            select_meters(["gpu-nvml", "gpu-lab"])
    finally:
        unregister_meter("gpu-lab")

    class Taken(LabMeter):
        name = "cpu-rapl"

    with pytest.raises(InvalidParameterError, match="'cpu-rapl' is already taken"):
        register_meter(Taken)

    class NoCovers(LabMeter):
        name = "gpu-nothing"
        covers = ()

    with pytest.raises(InvalidParameterError, match="covers must name one or more of"):
        register_meter(NoCovers)


def test_a_meter_that_cannot_leave_a_component_out_is_refused_when_named(cpuinfo: Path) -> None:
    class Greedy(BaseMeter):
        name = "soc-greedy"
        method = "counter"
        covers = ("npu", "cpu")

        def _probe(self):  # type: ignore[no-untyped-def]
            from wattwise.meters import Availability

            return Availability(True, "greedy.")

        def components(self):  # type: ignore[no-untyped-def]
            return ("npu", "cpu")  # ignores the context's exclude

        def read(self) -> dict[str, float]:
            return {"npu:0": 0.0, "cpu:0": 0.0}

        def info(self):  # type: ignore[no-untyped-def]
            from wattwise.meters import MeterInfo

            return MeterInfo(name=self.name, method="counter", source="greedy")

    register_meter(Greedy)
    try:
        with pytest.raises(InvalidParameterError, match="cannot leave it out"):
            select_meters(["soc-greedy", "cpu-model"], cpuinfo_path=cpuinfo)
    finally:
        unregister_meter("soc-greedy")


def test_every_component_has_a_label_and_an_attribution_rule() -> None:
    assert set(COMPONENT_LABELS) == set(COMPONENTS) == set(COMPONENT_ATTRIBUTION)
    assert COMPONENTS == ("cpu", "dram", "gpu", "npu")


def test_hardware_lists_gpus_from_every_gpu_meter(tmp_path: Path, cpuinfo: Path) -> None:
    from wattwise.testing.fake_amdsmi import FakeAmdGpu, FakeAmdSmi

    amdsmi = FakeAmdSmi([FakeAmdGpu(energy_uj=lambda t: 1e6 * (t + 1))])
    hw = describe_hardware(cpuinfo_path=cpuinfo, nvml=_no_gpu(), amdsmi=amdsmi,
                           total_memory_bytes=2**30)  # fmt: skip
    assert hw["gpus"] == [
        {
            "index": 0,
            "name": "AMD Instinct MI300X",
            "memory_mib": 196592,
            "power_limit_w": 750.0,
            "driver": "6.10.5",
            "vendor": "amd",
        }
    ]
    assert hw["accelerator"] == "gpu"
    assert amdsmi.initialised == 0  # shut down again


def test_import_loads_no_vendor_module() -> None:
    code = (
        "import sys, wattwise, wattwise.meters; "
        "print(sorted(m for m in ('pynvml', 'amdsmi', 'zeus_apple_silicon', 'psutil', 'numpy')"
        " if m in sys.modules))"
    )
    src = str(Path(__file__).parents[2] / "src")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={"PYTHONPATH": src})  # fmt: skip
    assert out.stdout.strip() == "[]"
