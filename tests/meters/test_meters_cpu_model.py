from __future__ import annotations

from collections import namedtuple
from pathlib import Path

import pytest
from meters_support import (
    AMX_FLAGS,
    EPYC_VM,
    INTEL_VM,
    ManualClock,
    ccf_row,
    data_rows,
    write_cpuinfo,
)

from wattwise.exceptions import InvalidParameterError
from wattwise.meters import CpuModelMeter, match_cpu, read_cpuinfo

Times = namedtuple(
    "Times",
    "user nice system idle iowait irq softirq steal guest guest_nice",
)


def _times(busy: float, *, idle: float = 1000.0, guest: float = 0.0) -> Times:
    # guest time is already inside user on Linux, so it must not be counted twice
    return Times(busy - 2.0, 0.0, 1.5, idle, 3.0, 0.25, 0.25, 0.0, guest, 0.0)


def _coefficient(kind: str, key: str = "all") -> tuple[float, float]:
    """(idle, max) of a row of the shipped SPECpower calibration table."""
    row = next(
        r
        for r in data_rows("calibration/specpower_coefficients.csv")
        if (r["kind"], r["key"]) == (kind, key)
    )
    return float(row["idle"]), float(row["max"])


def _ccf_scaled(provider: str, architecture: str) -> tuple[float, float]:
    """A CCF row as the model uses it where SPECpower has no results: times ccf-scale."""
    idle, peak = ccf_row(provider, architecture)
    k_idle, k_max = _coefficient("ccf-scale")
    return idle * k_idle, peak * k_max


def test_epyc_family_25_model_17_is_epyc_4th_gen(tmp_path: Path) -> None:
    match = match_cpu(read_cpuinfo(write_cpuinfo(tmp_path, **EPYC_VM)))
    # No SPECpower results for Zen 4: the CCF row, scaled by the calibration's ccf-scale.
    idle, peak = _ccf_scaled("aws", "EPYC 4th Gen")
    assert match.rule == "family-model"
    assert match.microarchitecture == "Zen 4"
    assert match.details["ccf_architecture"] == "EPYC 4th Gen"
    assert match.band_class == "arch-ccf"
    assert (match.idle_w_per_vcpu, match.max_w_per_vcpu) == pytest.approx((idle, peak))
    assert any("amd.c" in a for a in match.assumptions)
    assert any("AWS CCF table is used" in a for a in match.assumptions)


def test_intel_family_6_model_167_without_amx_is_rocket_lake_with_a_fitted_row(
    tmp_path: Path,
) -> None:
    # CCF has no Rocket Lake row; SPECpower has 9 Rocket Lake (Xeon E-23xx) servers.
    path = write_cpuinfo(tmp_path, **INTEL_VM, flags="fpu avx2 hypervisor")
    match = match_cpu(read_cpuinfo(path))
    assert match.microarchitecture == "Rocket Lake"
    assert match.rule == "family-model"
    assert match.band_class == "arch-specpower-recent"
    assert (match.idle_w_per_vcpu, match.max_w_per_vcpu) == _coefficient(
        "architecture", "Rocket Lake"
    )


def test_an_architecture_without_any_row_falls_back_to_the_default(tmp_path: Path) -> None:
    path = write_cpuinfo(
        tmp_path,
        vendor="GenuineIntel",
        model_name="Intel(R) Processor",
        family=6,
        model=0xAA,  # Meteor Lake: no CCF row, no SPECpower results
        flags="fpu avx2 hypervisor",
    )
    match = match_cpu(read_cpuinfo(path))
    assert match.microarchitecture == "Meteor Lake"
    assert match.rule == "default-per-thread"
    assert match.band_class == "default"
    assert (match.idle_w_per_vcpu, match.max_w_per_vcpu) == _coefficient("default")
    assert any("Meteor Lake" in a and "no calibrated or CCF row" in a for a in match.assumptions)


def test_amx_flags_override_a_masked_intel_model_number(tmp_path: Path) -> None:
    path = write_cpuinfo(tmp_path, **INTEL_VM, flags=AMX_FLAGS)
    match = match_cpu(read_cpuinfo(path))
    assert match.rule == "isa-flags"
    assert match.microarchitecture == "Sapphire Rapids"
    assert (match.idle_w_per_vcpu, match.max_w_per_vcpu) == pytest.approx(
        _ccf_scaled("aws", "Sapphire Rapids")
    )
    granite = write_cpuinfo(tmp_path, "gnr", **INTEL_VM, flags=AMX_FLAGS + " amx_fp16")
    assert match_cpu(read_cpuinfo(granite)).microarchitecture == "Granite Rapids"


@pytest.mark.parametrize(
    ("model_name", "family", "model", "architecture", "label"),
    [
        pytest.param(
            "Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz",
            6,
            106,
            "Ice Lake",
            "Ice Lake",
            id="8375C",
        ),
        pytest.param("AMD EPYC 7R13 Processor", 25, 1, "EPYC 3rd Gen", "Zen 3", id="7R13"),
        pytest.param(
            "Intel(R) Xeon(R) CPU E5-2686 v4 @ 2.30GHz",
            6,
            79,
            "Broadwell",
            "Broadwell",
            id="E5v4",
        ),
        pytest.param(
            "Intel(R) Xeon(R) Platinum 8488C",
            6,
            143,
            "Sapphire Rapids",
            "Sapphire Rapids",
            id="8488C",
        ),
    ],
)
def test_named_models_match_by_model_name(
    tmp_path: Path, model_name: str, family: int, model: int, architecture: str, label: str
) -> None:
    vendor = "AuthenticAMD" if "AMD" in model_name else "GenuineIntel"
    path = write_cpuinfo(
        tmp_path, vendor=vendor, model_name=model_name, family=family, model=model
    )
    match = match_cpu(read_cpuinfo(path))
    assert match.rule == "model-name"
    assert match.details["ccf_architecture"] == architecture
    fitted = {r["key"] for r in data_rows("calibration/specpower_coefficients.csv")}
    # A fitted SPECpower row wins; else the CCF row scaled (Ice Lake: CCF was as good).
    expected = (
        _coefficient("architecture", label)
        if label in fitted
        else _ccf_scaled("aws", architecture)
    )
    assert (match.idle_w_per_vcpu, match.max_w_per_vcpu) == pytest.approx(expected)


def test_provider_table_is_used_and_missing_rows_fall_back_to_aws(tmp_path: Path) -> None:
    epyc = write_cpuinfo(
        tmp_path, vendor="AuthenticAMD", model_name="AMD EPYC 9R14", family=25, model=17
    )
    match = match_cpu(read_cpuinfo(epyc), provider="gcp")
    assert (match.idle_w_per_vcpu, match.max_w_per_vcpu) == pytest.approx(
        _ccf_scaled("gcp", "EPYC 4th Gen")
    )
    coffee = write_cpuinfo(
        tmp_path,
        "coffee",
        vendor="GenuineIntel",
        model_name="Intel(R) Xeon(R) E-2176G CPU @ 3.70GHz",
        family=6,
        model=158,
        stepping=10,
    )
    match = match_cpu(read_cpuinfo(coffee), provider="gcp")
    assert (match.idle_w_per_vcpu, match.max_w_per_vcpu) == pytest.approx(
        _ccf_scaled("aws", "Coffee Lake")
    )
    assert any("gcp CCF table has no 'Coffee Lake' row" in a for a in match.assumptions)


def test_a_fitted_row_is_used_whatever_the_provider(tmp_path: Path) -> None:
    haswell = write_cpuinfo(
        tmp_path,
        vendor="GenuineIntel",
        model_name="Intel(R) Xeon(R) CPU E5-2699 v3 @ 2.30GHz",
        family=6,
        model=63,
    )
    match = match_cpu(read_cpuinfo(haswell), provider="gcp")
    assert (match.idle_w_per_vcpu, match.max_w_per_vcpu) == _coefficient("architecture", "Haswell")
    assert match.details["coefficients"] == "specpower-fit"


def test_cascade_lake_is_told_from_skylake_by_stepping(tmp_path: Path) -> None:
    common = {
        "vendor": "GenuineIntel",
        "model_name": "Intel Xeon Processor (Cascadelake)",
        "family": 6,
        "model": 0x55,
    }
    clx = match_cpu(read_cpuinfo(write_cpuinfo(tmp_path, "a", **common, stepping=7)))
    skx = match_cpu(read_cpuinfo(write_cpuinfo(tmp_path, "b", **common, stepping=4)))
    assert (clx.rule, clx.microarchitecture) == ("family-model", "Cascade Lake")
    assert skx.microarchitecture == "Skylake"


def test_client_cpu_on_bare_metal_uses_codecarbon_tdp_per_thread(tmp_path: Path) -> None:
    path = write_cpuinfo(
        tmp_path,
        vendor="GenuineIntel",
        model_name="Intel(R) Core(TM) i7-8700K CPU @ 3.70GHz",
        family=6,
        model=0x9E,
        stepping=10,
        n=12,
        cores=6,
        flags="fpu tsc ht avx2",
    )
    tdp = next(
        float(r["TDP"])
        for r in data_rows("hardware/codecarbon_cpu_power.csv")
        if r["Name"] == "Intel Core i7-8700K"
    )
    match = match_cpu(read_cpuinfo(path))
    f_idle, f_max = _coefficient("tdp-fraction")
    assert match.rule == "tdp-table"
    assert match.max_w_per_vcpu == pytest.approx(f_max * tdp / 12)
    assert match.idle_w_per_vcpu == pytest.approx(f_idle * tdp / 12)
    assert match.details["table"] == "hardware/codecarbon_cpu_power.csv"


def test_client_cpu_in_a_vm_uses_green_algorithms_cores(tmp_path: Path) -> None:
    path = write_cpuinfo(
        tmp_path,
        vendor="GenuineIntel",
        model_name="Intel(R) Core(TM) i7-8700K CPU @ 3.70GHz",
        family=6,
        model=0x9E,
        stepping=10,
        n=4,
        cores=2,  # 2 threads per core in the guest
    )
    row = next(
        r
        for r in data_rows("hardware/greenalgorithms_TDP_cpu.csv", skip_rows=1)
        if r["model"] == "Core i7-8700K"
    )
    match = match_cpu(read_cpuinfo(path))
    assert match.rule == "tdp-table"
    expected = float(row["TDP"]) / (int(row["n_cores"]) * 2) * _coefficient("tdp-fraction")[1]
    assert match.max_w_per_vcpu == pytest.approx(expected)
    assert match.details["table"] == "hardware/greenalgorithms_TDP_cpu.csv"


def test_energy_for_a_scripted_busy_sequence(tmp_path: Path) -> None:
    path = write_cpuinfo(tmp_path, **EPYC_VM)  # 2 vCPUs, EPYC 4th Gen
    idle, peak = _ccf_scaled("aws", "EPYC 4th Gen")
    clock = ManualClock(100.0)
    script = iter(
        [
            _times(50.0),
            _times(50.0 + 4.0, guest=2.0),  # 4 busy CPU-seconds over 10 s
            _times(50.0 + 4.0 + 15.0, guest=9.0),  # 15 more over 10 s (guest inside user)
        ]
    )
    meter = CpuModelMeter(path, clock=clock, cpu_times=lambda: next(script))
    assert meter.read() == {"cpu:0": 0.0}
    clock.t = 110.0
    e1 = 2 * idle * 10.0 + 4.0 * (peak - idle)
    assert meter.read()["cpu:0"] == pytest.approx(e1)
    clock.t = 120.0
    e2 = 2 * idle * 20.0 + 19.0 * (peak - idle)
    assert meter.read()["cpu:0"] == pytest.approx(e2)


def test_energy_never_decreases_when_busy_time_jitters(tmp_path: Path) -> None:
    clock = ManualClock()
    script = iter([_times(10.0), _times(20.0), _times(5.0)])
    meter = CpuModelMeter(
        write_cpuinfo(tmp_path, **EPYC_VM), clock=clock, cpu_times=lambda: next(script)
    )
    meter.read()
    clock.t = 1.0
    high = meter.read()["cpu:0"]
    clock.t = 1.0
    assert meter.read()["cpu:0"] == high


def test_info_records_rule_band_and_sources(tmp_path: Path) -> None:
    meter = CpuModelMeter(write_cpuinfo(tmp_path, **EPYC_VM), cpu_times=lambda: _times(1.0))
    assert meter.probe().ok
    info = meter.info()
    band = next(
        r
        for r in data_rows("calibration/specpower_bands.csv")
        if (r["rule_class"], r["load_range"]) == ("arch-ccf", "all")
    )
    assert info.method == "model"
    assert info.band_fraction == float(band["band_fraction"])
    assert info.band_meaning.startswith("90 % interval of host wall power, from ")
    assert f"from {band['n_servers']} SPECpower_ssj2008 servers" in info.band_meaning
    assert "out of sample" in info.band_source
    assert info.details["rule"] == "family-model"
    assert info.details["n_vcpu"] == 2
    assert "EPYC 4th Gen" in info.source


def test_unknown_provider_is_rejected() -> None:
    with pytest.raises(InvalidParameterError) as err:
        CpuModelMeter(provider="ibm")
    assert str(err.value) == (
        "The 'provider' parameter of CpuModelMeter must be one of 'aws', 'gcp', 'azure' "
        "or None. Got 'ibm' instead."
    )
