from __future__ import annotations

from pathlib import Path

import pytest
from meters_support import details_list, make_zone, set_energy

from wattwise.exceptions import MeterError, MeterPermissionError, MeterUnavailableError
from wattwise.meters import RaplMeter


@pytest.fixture
def server(tmp_path: Path) -> Path:
    """A flat /sys/class/powercap of one socket with core, uncore and dram subzones."""
    root = tmp_path / "powercap"
    root.mkdir()
    make_zone(root, "intel-rapl:0", "package-0", energy_uj=1_000_000)
    make_zone(root, "intel-rapl:0:0", "core", energy_uj=500_000)
    make_zone(root, "intel-rapl:0:1", "uncore", energy_uj=100_000)
    make_zone(root, "intel-rapl:0:2", "dram", energy_uj=2_000_000)
    return root


def test_package_and_dram_domains_are_read_and_core_is_ignored(server: Path) -> None:
    meter = RaplMeter(server)
    assert meter.probe().ok
    assert meter.components() == ("cpu", "dram")
    assert meter.read() == {"cpu:0": 0.0, "dram:0": 0.0}
    set_energy(server / "intel-rapl:0", 3_500_000)
    set_energy(server / "intel-rapl:0:0", 9_000_000)  # core grows too, never added
    set_energy(server / "intel-rapl:0:2", 2_250_000)
    assert meter.read() == pytest.approx({"cpu:0": 2.5, "dram:0": 0.25})
    ignored = " ".join(details_list(meter.info().details, "ignored"))
    assert "intel-rapl:0:0 (core)" in ignored
    assert "intel-rapl:0:1 (uncore)" in ignored


def test_nested_sysfs_layout_is_accepted(tmp_path: Path) -> None:
    root = tmp_path / "virtual-powercap"
    package = make_zone(root / "intel-rapl", "intel-rapl:0", "package-0", energy_uj=10)
    dram = make_zone(package, "intel-rapl:0:2", "dram", energy_uj=20)
    meter = RaplMeter(root)
    assert meter.probe().ok
    meter.read()
    set_energy(package, 1_000_010)
    set_energy(dram, 3_000_020)
    assert meter.read() == pytest.approx({"cpu:0": 1.0, "dram:0": 3.0})


def test_two_sockets_give_two_keys(tmp_path: Path) -> None:
    root = tmp_path / "pc"
    zero = make_zone(root, "intel-rapl:0", "package-0", energy_uj=5_000_000)
    one = make_zone(root, "intel-rapl:1", "package-1", energy_uj=9_000_000)
    meter = RaplMeter(root)
    meter.read()
    set_energy(zero, 6_000_000)
    set_energy(one, 11_000_000)
    assert meter.read() == pytest.approx({"cpu:0": 1.0, "cpu:1": 2.0})


def test_wraparound_adds_max_energy_range(tmp_path: Path) -> None:
    root = tmp_path / "pc"
    zone = make_zone(
        root, "intel-rapl:0", "package-0", energy_uj=999_000_000, max_range_uj=1_000_000_000
    )
    meter = RaplMeter(root)
    meter.read()
    set_energy(zone, 2_000_000)  # passed the top: 1_000_000 before it, 2_000_000 after
    assert meter.read()["cpu:0"] == pytest.approx(3.0)
    set_energy(zone, 5_000_000)
    assert meter.read()["cpu:0"] == pytest.approx(6.0)


def test_wraparound_without_known_range_counts_only_what_is_visible(tmp_path: Path) -> None:
    root = tmp_path / "pc"
    zone = make_zone(root, "intel-rapl:0", "package-0", energy_uj=900_000, max_range_uj=None)
    meter = RaplMeter(root)
    meter.read()
    set_energy(zone, 400_000)
    assert meter.read()["cpu:0"] == pytest.approx(0.4)


def test_missing_root_says_where_and_why(tmp_path: Path) -> None:
    meter = RaplMeter(tmp_path / "absent")
    availability = meter.probe()
    assert not availability.ok
    assert availability.reason == (
        f"no powercap RAPL interface at {tmp_path / 'absent'} (common in VMs and containers)."
    )
    assert "modprobe intel_rapl_msr" in availability.hint
    with pytest.raises(MeterUnavailableError, match="Cannot read RAPL counters"):
        meter.read()


def test_root_without_package_zone_is_unavailable(tmp_path: Path) -> None:
    root = tmp_path / "pc"
    make_zone(root, "intel-rapl:0", "psys", energy_uj=1)
    availability = RaplMeter(root).probe()
    assert not availability.ok
    assert "No RAPL package zone" in availability.reason


def test_permission_denied_names_the_file_and_the_fix(server: Path) -> None:
    # Tests run as root, which ignores file modes: simulate EACCES through the reader.
    def deny_energy(path: Path) -> str:
        if path.name == "energy_uj":
            raise PermissionError(13, "Permission denied", str(path))
        return path.read_text()

    meter = RaplMeter(server, read_file=deny_energy)
    availability = meter.probe()
    assert not availability.ok
    assert availability.reason.startswith("permission denied on intel-rapl:0/energy_uj;")
    # The fix is in the message itself: an installed wattwise has no docs/ folder.
    assert "docs/" not in availability.hint
    assert "sudo chmod o+r /sys/class/powercap/intel-rapl:*/energy_uj" in availability.hint
    assert 'RUN+="/usr/bin/chmod g+r /sys%p/energy_uj"' in availability.hint
    assert "the documentation's how-to 'RAPL permissions'" in availability.hint
    assert meter.unreadable_file == "intel-rapl:0/energy_uj"
    with pytest.raises(MeterPermissionError) as err:
        meter.read()
    assert str(err.value) == (
        "Cannot read RAPL counters: permission denied on intel-rapl:0/energy_uj. "
        "Run 'wattwise doctor' for the fix, or pass meters=['cpu-model'] to estimate "
        "CPU energy."
    )


def test_mmio_mirror_of_the_package_is_not_counted_twice(server: Path) -> None:
    mmio = make_zone(server, "intel-rapl-mmio:0", "package-0", energy_uj=7_000_000)
    meter = RaplMeter(server)
    meter.read()
    set_energy(server / "intel-rapl:0", 2_000_000)
    set_energy(mmio, 8_000_000)
    reading = meter.read()
    assert reading["cpu:0"] == pytest.approx(1.0)
    assert [z["zone"] for z in details_list(meter.info().details, "zones")] == [
        "intel-rapl:0",
        "intel-rapl:0:2",
    ]
    ignored = " ".join(details_list(meter.info().details, "ignored"))
    assert "intel-rapl-mmio:0 (package-0): mirrors intel-rapl:0" in ignored


def test_tpmi_zones_are_used_when_the_msr_interface_is_absent(tmp_path: Path) -> None:
    root = tmp_path / "pc"
    zone = make_zone(root, "intel-rapl-tpmi:0", "package-0", energy_uj=0)
    meter = RaplMeter(root)
    meter.read()
    set_energy(zone, 4_000_000)
    assert meter.read() == pytest.approx({"cpu:0": 4.0})


def test_equal_counters_of_multi_die_packages_count_once(tmp_path: Path) -> None:
    root = tmp_path / "pc"
    a = make_zone(root, "intel-rapl:0", "package-0", energy_uj=123_456_789)
    b = make_zone(root, "intel-rapl:1", "package-1", energy_uj=123_456_789)
    meter = RaplMeter(root)
    assert meter.read() == {"cpu:0": 0.0}
    set_energy(a, 125_456_789)
    set_energy(b, 125_456_789)
    assert meter.read() == pytest.approx({"cpu:0": 2.0})
    ignored = details_list(meter.info().details, "ignored")
    assert any("mirrors intel-rapl:0 (equal counters)" in s for s in ignored)


def test_distinct_dies_of_one_package_are_summed(tmp_path: Path) -> None:
    root = tmp_path / "pc"
    d0 = make_zone(root, "intel-rapl:0", "package-0-die-0", energy_uj=10_000_000)
    d1 = make_zone(root, "intel-rapl:1", "package-0-die-1", energy_uj=50_000_000)
    meter = RaplMeter(root)
    meter.read()
    set_energy(d0, 11_000_000)
    set_energy(d1, 52_000_000)
    assert meter.read() == pytest.approx({"cpu:0": 3.0})


def test_psys_is_ignored_and_dram_can_be_left_out(server: Path) -> None:
    make_zone(server, "intel-rapl:1", "psys", energy_uj=99)
    meter = RaplMeter(server, include_dram=False)
    assert meter.probe().ok
    assert meter.components() == ("cpu",)
    assert set(meter.read()) == {"cpu:0"}
    assert any("psys" in s for s in details_list(meter.info().details, "ignored"))


def test_counter_vanishing_mid_run_raises_meter_error(server: Path) -> None:
    meter = RaplMeter(server)
    meter.read()
    (server / "intel-rapl:0" / "energy_uj").unlink()
    with pytest.raises(MeterError, match=r"intel-rapl:0/energy_uj .* failed mid-run"):
        meter.read()


def test_a_second_probe_does_not_reset_the_totals(server: Path) -> None:
    meter = RaplMeter(server)
    meter.read()
    set_energy(server / "intel-rapl:0", 4_000_000)
    assert meter.read()["cpu:0"] == pytest.approx(3.0)
    assert meter.probe().ok
    assert meter.read()["cpu:0"] == pytest.approx(3.0)


def test_info_is_a_counter_without_band(server: Path) -> None:
    info = RaplMeter(server).info()
    assert info.name == "cpu-rapl"
    assert info.method == "counter"
    assert info.band_fraction is None
    assert "not quantified" in info.band_source
    assert "intel-rapl:0 (package-0) -> cpu:0" in info.source
    assert any("Wraparound" in a for a in info.assumptions)


def test_amd_package_with_core_subzone_has_no_dram(tmp_path: Path) -> None:
    # AMD family 17h+ through the same intel-rapl control type: package and core only.
    root = tmp_path / "pc"
    package = make_zone(root, "intel-rapl:0", "package-0", energy_uj=0)
    make_zone(root, "intel-rapl:0:0", "core", energy_uj=0)
    meter = RaplMeter(str(root))
    assert meter.probe().ok
    assert meter.components() == ("cpu",)
    meter.read()
    set_energy(package, 65_000_000)
    assert meter.read() == pytest.approx({"cpu:0": 65.0})


def test_wattwise_rapl_root_names_a_mounted_powercap_tree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wattwise.meters import select_meters
    from wattwise.testing.fake_nvml import FakeNvml

    mounted = tmp_path / "host-powercap"
    make_zone(mounted, "intel-rapl:0", "package-0", energy_uj=10)
    monkeypatch.setenv("WATTWISE_RAPL_ROOT", str(mounted))
    assert RaplMeter().root == mounted
    selection = select_meters(nvml=FakeNvml([]))
    assert selection.meters[0].name == "cpu-rapl"
    assert str(mounted) in selection.meters[0].info().source


def test_wattwise_rapl_root_that_is_not_a_folder_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATTWISE_RAPL_ROOT", str(tmp_path / "not-mounted"))
    state = RaplMeter().probe()
    assert not state.ok
    assert state.reason == f"WATTWISE_RAPL_ROOT={tmp_path / 'not-mounted'} is not a directory."
    assert "-v /sys/devices/virtual/powercap:/host/powercap:ro" in state.hint
