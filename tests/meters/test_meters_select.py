from __future__ import annotations

from pathlib import Path

import pytest
from meters_support import EPYC_VM, make_zone, write_cpuinfo

from wattwise.exceptions import (
    InvalidParameterError,
    MeterPermissionError,
    MeterUnavailableError,
)
from wattwise.meters import (
    CpuModelMeter,
    DramModelMeter,
    MeterSelection,
    NvmlMeter,
    RaplMeter,
    probe_all,
    select_meters,
)
from wattwise.meters import _rapl as rapl_module
from wattwise.meters._base import component_of
from wattwise.testing import fake_nvml
from wattwise.testing.fake_nvml import FakeGpu, FakeNvml


@pytest.fixture
def cpuinfo(tmp_path: Path) -> Path:
    return write_cpuinfo(tmp_path, **EPYC_VM)


@pytest.fixture
def no_gpu() -> FakeNvml:
    return FakeNvml([], init_error=fake_nvml.NVML_ERROR_LIBRARY_NOT_FOUND)


def _rapl_tree(root: Path, *, dram: bool) -> Path:
    make_zone(root, "intel-rapl:0", "package-0", energy_uj=1)
    if dram:
        make_zone(root, "intel-rapl:0:2", "dram", energy_uj=1)
    return root


def _components(selection: MeterSelection) -> list[str]:
    comps: list[str] = []
    for meter in selection.meters:
        comps.extend(meter.components())
    return comps


def test_vm_without_rapl_or_gpu_falls_back_to_models(
    tmp_path: Path, cpuinfo: Path, no_gpu: FakeNvml
) -> None:
    selection = select_meters(rapl_root=tmp_path / "absent", nvml=no_gpu, cpuinfo_path=cpuinfo)
    assert [type(m) for m in selection.meters] == [CpuModelMeter, DramModelMeter]
    # soc-apple is not tried off macOS; gpu-amdsmi finds no AMD GPU (or no amdsmi) here
    assert set(selection.unavailable) == {"cpu-rapl", "gpu-nvml", "gpu-amdsmi"}
    assert selection.fallbacks[0] == (
        f"cpu: no RAPL counters here (no powercap RAPL interface at {tmp_path / 'absent'} "
        "(common in VMs and containers)); estimated with the cpu-model meter "
        "(rule 'family-model')."
    )
    assert selection.fallbacks[1].startswith("dram: no RAPL DRAM counter here")
    assert selection.fallbacks[1].endswith("estimated with the dram-model meter.")


def test_bare_metal_with_rapl_dram_and_gpu_uses_counters_only(
    tmp_path: Path, cpuinfo: Path
) -> None:
    root = _rapl_tree(tmp_path / "pc", dram=True)
    gpu = FakeNvml([FakeGpu(energy_mj=lambda t: 0)])
    selection = select_meters(rapl_root=root, nvml=gpu, cpuinfo_path=cpuinfo)
    assert [type(m) for m in selection.meters] == [RaplMeter, NvmlMeter]
    assert sorted(_components(selection)) == ["cpu", "dram", "gpu"]
    assert selection.fallbacks == []
    assert set(selection.meters[0].read()) == {"cpu:0", "dram:0"}
    selection.close()
    assert gpu.refcount == 0


def test_rapl_without_dram_domain_adds_the_dram_model(
    tmp_path: Path, cpuinfo: Path, no_gpu: FakeNvml
) -> None:
    root = _rapl_tree(tmp_path / "pc", dram=False)
    selection = select_meters(rapl_root=root, nvml=no_gpu, cpuinfo_path=cpuinfo)
    assert [m.name for m in selection.meters] == ["cpu-rapl", "dram-model"]
    assert selection.fallbacks == [
        "dram: the RAPL counters here have no DRAM domain; estimated with the dram-model meter."
    ]


def test_never_two_meters_for_one_component(tmp_path: Path, cpuinfo: Path) -> None:
    gpu = FakeNvml([FakeGpu(energy_mj=lambda t: 0)])
    for dram in (False, True):
        root = _rapl_tree(tmp_path / f"pc{dram}", dram=dram)
        for selection in (
            select_meters(rapl_root=root, nvml=gpu, cpuinfo_path=cpuinfo),
            select_meters(["cpu-rapl", "dram-model"], rapl_root=root, cpuinfo_path=cpuinfo),
        ):
            comps = _components(selection)
            assert len(comps) == len(set(comps))
            keys = [k for m in selection.meters for k in m.read()]
            assert len({component_of(k) for k in keys}) == len(set(comps))
            selection.close()


def test_named_rapl_with_dram_model_drops_the_rapl_dram_domain(
    tmp_path: Path, cpuinfo: Path
) -> None:
    root = _rapl_tree(tmp_path / "pc", dram=True)
    selection = select_meters(["cpu-rapl", "dram-model"], rapl_root=root, cpuinfo_path=cpuinfo)
    assert selection.meters[0].components() == ("cpu",)
    assert set(selection.meters[0].read()) == {"cpu:0"}


def test_named_rapl_without_permission_raises_with_the_fix(
    tmp_path: Path, cpuinfo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _rapl_tree(tmp_path / "pc", dram=False)

    def deny(path: Path) -> str:
        if path.name == "energy_uj":
            raise PermissionError(13, "Permission denied")
        return path.read_text()

    monkeypatch.setattr(rapl_module, "_read_sysfs", deny)
    with pytest.raises(MeterPermissionError) as err:
        select_meters(["cpu-rapl"], rapl_root=root, cpuinfo_path=cpuinfo)
    assert str(err.value) == (
        "Cannot read RAPL counters: permission denied on intel-rapl:0/energy_uj. Run "
        "'wattwise doctor' for the fix, or pass meters=['cpu-model'] to estimate CPU energy."
    )
    # chosen by default, the same failure degrades to the model instead
    selection = select_meters(rapl_root=root, nvml=FakeNvml([]), cpuinfo_path=cpuinfo)
    assert selection.meters[0].name == "cpu-model"
    assert "permission denied on intel-rapl:0/energy_uj" in selection.fallbacks[0]


def test_named_unavailable_meters_say_what_why_and_how(
    tmp_path: Path, cpuinfo: Path, no_gpu: FakeNvml
) -> None:
    with pytest.raises(MeterUnavailableError) as err:
        select_meters(["cpu-rapl"], rapl_root=tmp_path / "absent", cpuinfo_path=cpuinfo)
    message = str(err.value)
    assert message.startswith("Cannot use the cpu-rapl meter: no powercap RAPL interface at")
    assert message.endswith(
        "Run 'wattwise doctor' for details, or pass meters=['cpu-model'] to estimate CPU energy."
    )
    with pytest.raises(MeterUnavailableError, match="NVML Shared Library Not Found"):
        select_meters(["cpu-model", "gpu-nvml"], nvml=no_gpu, cpuinfo_path=cpuinfo)
    assert no_gpu.refcount == 0


def test_named_gpu_without_permission_is_a_permission_error(cpuinfo: Path) -> None:
    nvml = FakeNvml([FakeGpu()], init_error=fake_nvml.NVML_ERROR_NO_PERMISSION)
    with pytest.raises(MeterPermissionError, match="Insufficient Permissions"):
        select_meters(["gpu-nvml"], nvml=nvml, cpuinfo_path=cpuinfo)


def test_unknown_id_lists_the_valid_ones() -> None:
    with pytest.raises(InvalidParameterError) as err:
        select_meters(["rapl"])
    assert str(err.value) == (
        "Unknown meter 'rapl'. Valid meter ids are 'cpu-model', 'cpu-rapl', 'dram-model', "
        "'gpu-amdsmi', 'gpu-nvml', 'soc-apple'."
    )


def test_two_meters_for_one_component_are_refused() -> None:
    with pytest.raises(InvalidParameterError, match="'cpu-rapl' and 'cpu-model' both measure"):
        select_meters(["cpu-rapl", "cpu-model"])


def test_comma_separated_names_are_accepted(cpuinfo: Path) -> None:
    selection = select_meters("cpu-model, dram-model", cpuinfo_path=cpuinfo)
    assert [m.name for m in selection.meters] == ["cpu-model", "dram-model"]


def test_probe_all_reports_every_meter_in_order(
    tmp_path: Path, cpuinfo: Path, no_gpu: FakeNvml
) -> None:
    probes = probe_all(rapl_root=tmp_path / "absent", nvml=no_gpu, cpuinfo_path=cpuinfo)
    assert [name for name, _ in probes] == [
        "cpu-rapl",
        "cpu-model",
        "dram-model",
        "gpu-nvml",
        "gpu-amdsmi",
        "soc-apple",
    ]
    assert [a.ok for _, a in probes] == [False, True, True, False, False, False]
    assert all(a.reason.endswith(".") for _, a in probes)
