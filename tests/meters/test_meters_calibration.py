"""The SPECpower calibration, pinned: hand-checked predictions and bands for real servers.

Every expected number below is worked out by hand in the comments from the shipped tables
``wattwise/data/calibration/specpower_coefficients.csv`` (W per thread, W per GB) and
``specpower_bands.csv`` (90 % half-widths), not by calling the code twice. The measured
figures are the published SPECpower_ssj2008 results named in each test ("SPECpower_ssj2008
results published by SPEC"). When ``scripts/fit_calibration.py --write`` changes the
tables, these tests fail on purpose: update the hand computations with the new rows.
"""

from __future__ import annotations

import math
import sys
from collections import namedtuple
from pathlib import Path

import pytest
from meters_support import ManualClock, data_rows, write_cpuinfo

from wattwise.meters import CpuModelMeter, DramModelMeter, match_cpu, read_cpuinfo

REPO = Path(__file__).resolve().parents[2]
Times = namedtuple("Times", "user system idle")
GIB = 2**30


def host_power(
    tmp_path: Path,
    model_name: str,
    *,
    threads: int,
    sockets: int,
    mem_gib: int,
    load: float,
    vendor: str = "GenuineIntel",
) -> tuple[float, float, CpuModelMeter, DramModelMeter]:
    """Mean cpu-model and dram-model watts of a bare-metal host held at ``load`` for 10 s."""
    path = write_cpuinfo(
        tmp_path,
        vendor=vendor,
        model_name=model_name,
        family=6,
        model=0,
        n=threads,
        sockets=sockets,
        flags="fpu vme de pse tsc msr pae",
    )
    clock = ManualClock(0.0)
    busy = iter([0.0, load * threads * 10.0])
    cpu = CpuModelMeter(path, clock=clock, cpu_times=lambda: Times(next(busy), 0.0, 0.0))
    dram = DramModelMeter(total_bytes=mem_gib * GIB, clock=clock)
    cpu.read(), dram.read()
    clock.t = 10.0
    return cpu.read()["cpu:0"] / 10.0, dram.read()["dram:0"] / 10.0, cpu, dram


def test_epyc_7763_server_at_idle_and_half_load(tmp_path: Path) -> None:
    # power_ssj2008-20210221-01063: AMD EPYC 7763, 2 chips, 256 threads, 256 GB;
    # measured 120.0 W at active idle, 336.0 W at 50 % (actual load 50.0 %).
    # Zen 3 row: 0.2925 W idle, 1.6904 W busy per thread; memory 0.2500 W/GB.
    #   idle: 256 x 0.2925 = 74.880 W  + 256 x 0.25 = 64.000 W  -> 138.880 W
    #   50 %: 256 x (0.2925 + 0.5 x (1.6904 - 0.2925)) = 256 x 0.99145 = 253.8112 W
    #         + 64.000 W -> 317.8112 W
    cpu_w, dram_w, meter, _ = host_power(
        tmp_path, "AMD EPYC 7763 64-Core Processor", threads=256, sockets=2, mem_gib=256,
        load=0.5, vendor="AuthenticAMD",
    )  # fmt: skip
    assert cpu_w == pytest.approx(253.8112)
    assert dram_w == pytest.approx(64.0)
    # 336.0 / 317.8112 - 1 = +0.0572, inside the recent-architecture band at 30-100 % load
    # (arch-specpower-recent, active: ±0.2263).
    info = meter.info()
    assert info.details["band_class"] == "arch-specpower-recent"
    assert info.band_fraction == 0.2263
    assert abs(336.0 / (cpu_w + dram_w) - 1) <= info.band_fraction
    assert "at 30-100 % load" in info.band_meaning
    # At idle the band is wider (arch-specpower-recent, idle: ±0.4673):
    # 120.0 / 138.880 - 1 = -0.1359, inside.
    assert meter.band_for(0.0)[0] == 0.4673
    assert abs(120.0 / 138.880 - 1) <= 0.4673


def test_cascade_lake_server_at_full_load(tmp_path: Path) -> None:
    # power_ssj2008-20190311-00881: Xeon Platinum 8280, 4 chips, 224 threads, 192 GB;
    # measured 942.0 W at 100 % (actual load 99.7 %).
    # Cascade Lake row: 0.1810 / 3.2847 W per thread.
    #   224 x (0.1810 + 0.997 x (3.2847 - 0.1810)) = 224 x (0.1810 + 3.0943889)
    #   = 224 x 3.2753889 = 733.6871 W;  + 192 x 0.25 = 48.000 W -> 781.6871 W
    cpu_w, dram_w, meter, _ = host_power(
        tmp_path, "Intel(R) Xeon(R) Platinum 8280 CPU @ 2.70GHz", threads=224, sockets=4,
        mem_gib=192, load=0.997,
    )  # fmt: skip
    assert cpu_w == pytest.approx(733.6871, abs=1e-3)
    assert dram_w == pytest.approx(48.0)
    # 942.0 / 781.6871 - 1 = +0.2051: inside ±0.2263, close to its edge.
    assert meter.info().band_fraction == 0.2263
    assert 0.2 < 942.0 / (cpu_w + dram_w) - 1 <= 0.2263


def test_westmere_server_uses_the_older_band(tmp_path: Path) -> None:
    # power_ssj2008-20100315-00237: Xeon X5670, 2 chips, 24 threads, 12 GB;
    # measured 170.0 W at 50 % (actual load 50.1 %).
    # Westmere row (no CCF row; fitted on 68 servers): 3.3276 / 9.9227 W per thread.
    #   24 x (3.3276 + 0.501 x 6.5951) = 24 x 6.6317451 = 159.1619 W; + 12 x 0.25 = 3.0 W
    #   -> 162.1619 W; 170.0 / 162.1619 - 1 = +0.0483, inside ±0.4854 (older, active).
    cpu_w, dram_w, meter, _ = host_power(
        tmp_path, "Intel(R) Xeon(R) CPU X5670 @ 2.93GHz", threads=24, sockets=2, mem_gib=12,
        load=0.501,
    )  # fmt: skip
    assert cpu_w == pytest.approx(159.1619, abs=1e-3)
    assert dram_w == pytest.approx(3.0)
    assert meter.match.microarchitecture == "Westmere"
    assert meter.info().band_fraction == 0.4854


def test_small_e3_server_falls_outside_its_band(tmp_path: Path) -> None:
    # power_ssj2008-20130305-00600: Xeon E3-1220v2, 1 chip, 4 threads, 8 GB;
    # measured 36.6 W idle. "E3-1220v2" (no space) is Ivy Bridge: 1.8832 / 6.8308 W.
    #   idle: 4 x 1.8832 = 7.5328 W + 8 x 0.25 = 2.0 W -> 9.5328 W
    #   36.6 / 9.5328 - 1 = +2.839: outside ±0.6290 (older, idle). A 4-thread server's
    #   fans, disks and power supply do not scale with threads: one of the 10 %.
    cpu_w, dram_w, meter, _ = host_power(
        tmp_path, "Intel(R) Xeon(R) CPU E3-1220v2 @ 3.10GHz", threads=4, sockets=1,
        mem_gib=8, load=0.0,
    )  # fmt: skip
    assert meter.match.microarchitecture == "Ivy Bridge"
    assert cpu_w == pytest.approx(7.5328)
    assert dram_w == pytest.approx(2.0)
    assert meter.info().band_fraction == 0.6290
    assert abs(36.6 / (cpu_w + dram_w) - 1) > 0.6290


def test_2007_server_with_a_pre_2011_architecture_row(tmp_path: Path) -> None:
    # power_ssj2008-20071128-00001: Xeon L5335 (Clovertown, Core microarchitecture),
    # 2 chips, 8 threads, 16 GB; measured 260.0 W at 100 % (actual 99.1 %). CCF has no
    # row for it; the fitted Core row: 27.7881 / 42.2107 W per thread.
    #   8 x (27.7881 + 0.991 x 14.4226) = 8 x 42.0809 = 336.6472 W; + 4.0 W -> 340.6472 W
    #   260.0 / 340.6472 - 1 = -0.2368, inside ±0.4854 (older, active).
    cpu_w, dram_w, meter, _ = host_power(
        tmp_path, "Intel(R) Xeon(R) CPU L5335 @ 2.00GHz", threads=8, sockets=2, mem_gib=16,
        load=0.991,
    )  # fmt: skip
    assert meter.match.microarchitecture == "Core"
    assert meter.match.rule == "model-name"
    assert cpu_w == pytest.approx(336.6472, abs=1e-3)
    assert abs(260.0 / (cpu_w + dram_w) - 1) <= meter.info().band_fraction == 0.4854


def test_an_architecture_without_specpower_results_says_so(tmp_path: Path) -> None:
    # Sapphire Rapids: no SPECpower results (the data end mid-2022). CCF AWS row
    # 1.0362861 / 4.1604763 W per vCPU x ccf-scale 0.5880 / 0.8244
    #   = 0.609336 / 3.429897 W per vCPU; band arch-ccf (all: ±0.3062).
    path = write_cpuinfo(
        tmp_path, vendor="GenuineIntel", model_name="Intel(R) Xeon(R) Platinum 8488C",
        family=6, model=143,
    )  # fmt: skip
    meter = CpuModelMeter(path, cpu_times=lambda: Times(0.0, 0.0, 0.0))
    match = meter.match
    assert match.idle_w_per_vcpu == pytest.approx(0.609336, abs=1e-6)
    assert match.max_w_per_vcpu == pytest.approx(3.429897, abs=1e-6)
    info = meter.info()
    assert info.band_fraction == 0.3062
    assert any("No SPECpower results for 'Sapphire Rapids'" in a for a in info.assumptions)
    assert "leave-one-architecture-out" in info.band_meaning
    assert "not strictly out of sample" in info.band_meaning


def test_unknown_cpu_gets_the_wide_default_band(tmp_path: Path) -> None:
    # Nothing matches: 1.3199 / 6.7664 W per thread, band default (all: ±3.6002), from
    # every one of the 632 servers: it knows nothing of the CPU and says so.
    path = write_cpuinfo(
        tmp_path, vendor="", model_name="Mystery CPU", family=0, model=0, n=4
    )  # fmt: skip
    meter = CpuModelMeter(path, cpu_times=lambda: Times(0.0, 0.0, 0.0))
    assert meter.match.rule == "default-per-thread"
    assert (meter.match.idle_w_per_vcpu, meter.match.max_w_per_vcpu) == (1.3199, 6.7664)
    info = meter.info()
    assert info.band_fraction == 3.6002
    assert info.band_meaning.startswith(
        "90 % interval of host wall power, from 632 SPECpower_ssj2008 servers"
    )


def test_band_meaning_is_recorded_before_the_load_is_known(tmp_path: Path) -> None:
    path = write_cpuinfo(
        tmp_path, vendor="AuthenticAMD", model_name="AMD EPYC 7763 64-Core Processor",
        family=25, model=1,
    )  # fmt: skip
    info = CpuModelMeter(path, cpu_times=lambda: Times(0.0, 0.0, 0.0)).info()
    # Before any read: every load level pooled (arch-specpower-recent, all: ±0.2715,
    # 227 servers, 2497 points).
    assert info.band_fraction == 0.2715
    assert info.band_meaning.startswith(
        "90 % interval of host wall power, from 227 SPECpower_ssj2008 servers (2497 load "
        "points, all load levels pooled), out of sample"
    )
    assert info.details["bands_by_load"] == {
        "idle": 0.4673,
        "low": 0.3994,
        "active": 0.2263,
        "all": 0.2715,
    }
    assert info.band_source.startswith("calibration/specpower_bands.csv row")
    assert "dram-model covers memory" in str(info.details["covers"])


@pytest.mark.parametrize(
    ("utilisation", "load_range"),
    [
        (0.0, "idle"),
        (0.04, "idle"),
        (0.05, "low"),
        (0.2, "low"),
        (0.25, "active"),
        (1.0, "active"),
    ],
)
def test_load_ranges_follow_specpower_levels(
    tmp_path: Path, utilisation: float, load_range: str
) -> None:
    path = write_cpuinfo(
        tmp_path, vendor="AuthenticAMD", model_name="AMD EPYC 7763", family=25, model=1
    )
    meter = CpuModelMeter(path, cpu_times=lambda: Times(0.0, 0.0, 0.0))
    band = next(
        float(r["band_fraction"])
        for r in data_rows("calibration/specpower_bands.csv")
        if (r["rule_class"], r["load_range"]) == ("arch-specpower-recent", load_range)
    )
    assert meter.band_for(utilisation)[0] == band


@pytest.mark.parametrize(
    ("name", "architecture"),
    [
        ("Intel Xeon E3-1220v2", "Ivy Bridge"),
        ("Intel Xeon E3-1240V2", "Ivy Bridge"),
        ("Intel Xeon E5-2660V2", "Ivy Bridge"),
        ("Intel Xeon E3-1265Lv3", "Haswell"),
        ("Intel Xeon E5-2698 V4", "Broadwell"),
        ("Intel Xeon E3-1260L v5", "Skylake"),
        ("Intel Xeon E3-1220", "Sandy Bridge"),
        ("Intel Xeon E5-2660 2.20 GHz (Intel Turbo Boost Technology up to 3.00 GHz)",
         "Sandy Bridge"),
        ("Intel Xeon processor E7-8870", "Westmere"),
        ("Intel Xeon X5670", "Westmere"),
        ("Intel Xeon CPU X5570", "Nehalem"),
        ("Intel Xeon X3470", "Nehalem"),
        ("Intel Xeon L5420", "Penryn"),
        ("Intel Xeon Processor E3110", "Penryn"),
        ("Intel Xeon 3070", "Core"),
        ("Intel Xeon processor 5160", "Core"),
        ("AMD Opteron 2216HE", "K8"),  # one server only: named, but no fitted row
        ("Quad-Core AMD Opteron Processor 2356", "K10"),
        ("AMD Opteron 4164EE", "K10"),
        ("AMD Opteron 6276", "Bulldozer"),
        ("AMD Opteron 6380", "Piledriver"),
    ],
)  # fmt: skip
def test_model_names_of_specpower_servers(tmp_path: Path, name: str, architecture: str) -> None:
    vendor = "AuthenticAMD" if "AMD" in name else "GenuineIntel"
    path = write_cpuinfo(tmp_path, vendor=vendor, model_name=name, family=0, model=0)
    match = match_cpu(read_cpuinfo(path))
    assert match.microarchitecture == architecture
    assert match.rule == ("default-per-thread" if architecture == "K8" else "model-name")


def test_shipped_bands_cover_every_rule_and_load_range_at_90_percent() -> None:
    rows = data_rows("calibration/specpower_bands.csv")
    keys = {(r["rule_class"], r["load_range"]) for r in rows}
    classes = ("arch-specpower-recent", "arch-specpower-older", "arch-ccf", "tdp-table",
               "default")  # fmt: skip
    assert {(c, load) for c in classes for load in ("idle", "low", "active", "all")} <= keys
    for r in rows:
        assert 0.88 <= float(r["coverage"]) <= 0.92, r
        assert float(r["band_fraction"]) > 0
    # Idle is harder to predict than load: its band is wider for every rule class.
    by = {(r["rule_class"], r["load_range"]): float(r["band_fraction"]) for r in rows}
    assert all(by[c, "idle"] > by[c, "active"] for c in classes)


def test_the_generic_model_band_matches_the_calibration() -> None:
    # meters_uncertainty.csv keeps one band per (method, component) for callers of
    # uncertainty_band(); for models it must be the calibrated recent-architecture band.
    band = next(
        r["band_fraction"]
        for r in data_rows("calibration/specpower_bands.csv")
        if (r["rule_class"], r["load_range"]) == ("arch-specpower-recent", "all")
    )
    rows = {(r["method"], r["component"]): r for r in data_rows("meters_uncertainty.csv")}
    assert float(rows["model", "cpu"]["band_fraction"]) == float(band)
    assert float(rows["model", "dram"]["band_fraction"]) == float(band)
    assert "specpower_bands.csv" in rows["model", "cpu"]["source"]


# -- the fitting script, on servers made up so the answers are known -------------------


@pytest.fixture(scope="module")
def fit_calibration():  # type: ignore[no-untyped-def]
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import fit_calibration as fc
    finally:
        sys.path.remove(str(REPO / "scripts"))
    return fc


def _server(fc, name: str, threads: int, mem: float, idle: float, full: float):  # type: ignore[no-untyped-def]
    points = tuple(
        fc.Point(lvl, u, idle + u * (full - idle))
        for lvl, u in (("idle", 0.0), ("50", 0.5), ("100", 1.0))
    )
    info = fc.cpuinfo_for(name, threads, 1, threads)
    return fc.Server(name, name, 2019, threads, 1, threads, mem, 1, points, info,
                     "Cascade Lake", None, 5.0)  # fmt: skip


def test_fit_takes_medians_of_each_servers_line(fit_calibration) -> None:  # type: ignore[no-untyped-def]
    fc = fit_calibration
    # Three exact lines. With w_mem = 0.1 W/GB the memory (10, 20, 40 GB -> 1, 2, 4 W)
    # is taken out before dividing by threads:
    #   a: (21 - 1) / 10 = 2.0 idle, (101 - 1) / 10 = 10.0 full
    #   b: (42 - 2) / 10 = 4.0,       (82 - 2) / 10 = 8.0
    #   c: (34 - 4) / 10 = 3.0,       (124 - 4) / 10 = 12.0
    # medians: idle 3.0, full 10.0.
    servers = [
        _server(fc, "a", 10, 10, 21.0, 101.0),
        _server(fc, "b", 10, 20, 42.0, 82.0),
        _server(fc, "c", 10, 40, 34.0, 124.0),
    ]
    assert fc.server_line(servers[0], 0.1) == pytest.approx((2.0, 10.0))
    cal = fc.fit(servers, 0.1)
    row = cal.architectures["Cascade Lake"]
    assert (row.idle, row.max) == pytest.approx((3.0, 10.0))
    assert row.band_class == "arch-specpower-recent"
    assert cal.default_w_per_thread == pytest.approx((3.0, 10.0))
    # TDP per thread 5.0 W on all three: fractions are the medians of 2/5, 4/5, 3/5 and
    # 10/5, 8/5, 12/5 -> 0.6 and 2.0.
    assert cal.tdp_fraction == pytest.approx((0.6, 2.0))
    assert cal.dram_w_per_gb == 0.1


def test_conformal_quantile_is_the_ceil_n_plus_1_rank(fit_calibration) -> None:  # type: ignore[no-untyped-def]
    fc = fit_calibration
    # n = 19 residuals 0.01 … 0.19: rank ceil(20 x 0.9) = 18 -> 0.18.
    residuals = [-(i / 100) if i % 2 else i / 100 for i in range(1, 20)]
    assert fc.conformal_q(residuals) == pytest.approx(0.18)
    # Too few points for a 90 % rank: the largest one, never less.
    assert fc.conformal_q([0.3, -0.1]) == pytest.approx(0.3)
    assert math.isinf(fc.conformal_q([]))


def test_benchmark_and_fit_refuse_a_bad_table_in_one_line(tmp_path: Path) -> None:
    import subprocess

    bad = tmp_path / "results.csv"
    bad.write_text("file,cpu_name,idle\nx.txt,Intel Xeon X5670,60\n", encoding="utf-8")
    for script in ("benchmarks/calibration.py", "scripts/fit_calibration.py"):
        for table, says in ((bad, "has no column w100"), (tmp_path / "none.csv", "No SPEC")):
            proc = subprocess.run(
                [sys.executable, str(REPO / script), str(table)],
                capture_output=True, text=True, timeout=120, check=False,
            )  # fmt: skip
            assert proc.returncode == 2, proc.stderr
            assert says in proc.stderr
            assert len(proc.stderr.strip().splitlines()) == 1
            assert "Traceback" not in proc.stderr
