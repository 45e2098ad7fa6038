"""CodeCarbon 3's added columns in the export: filled where wattwise knows them, else empty."""

from __future__ import annotations

import csv
import io
import time

import psutil
import pytest
from report_support import HARDWARE, insert_run, spin

import wattwise
from wattwise.meters import DramModelMeter
from wattwise.report import codecarbon_row, render_codecarbon_csv, select_runs
from wattwise.store import open_store
from wattwise.testing import FakeMeter


def _rows() -> list[dict[str, str]]:
    text = render_codecarbon_csv(select_runs(open_store()).counted, project_name="p")
    return list(csv.DictReader(io.StringIO(text)))


def test_a_real_run_fills_utilisation_and_memory_from_the_dram_model() -> None:
    with wattwise.track("mem", meters=[FakeMeter({"cpu:0": 20.0}), DramModelMeter()],
                        interval_s=0.05) as run:  # fmt: skip
        spin(0.4)
    rss = psutil.Process().memory_info().rss
    total = psutil.virtual_memory().total
    (row,) = _rows()
    rec = open_store().get_run(run.id)
    threads = rec.record["hardware"]["cpu"]["threads"]
    # the tree's resident memory over the machine's, time-weighted (this process: stable)
    assert float(row["ram_utilization_percent"]) == pytest.approx(100 * rss / total, rel=0.1)
    assert float(row["ram_used_gb"]) == pytest.approx(rss / 2**30, rel=0.1)
    cpu = 100 * rec.record["cpu_time_s"] / rec.duration_s / threads
    assert float(row["cpu_utilization_percent"]) == pytest.approx(cpu, abs=0.01)
    assert 0 < float(row["cpu_utilization_percent"]) <= 100
    # energies carry the PUE, as CodeCarbon's do; the total is the components' sum
    pue = float(row["pue"])
    dram = next(c for c in rec.components if c.component == "dram")
    assert float(row["ram_energy"]) == pytest.approx(dram.energy_j * pue / 3.6e6)
    parts = sum(float(row[f"{c}_energy"]) for c in ("cpu", "gpu", "ram"))
    assert float(row["energy_consumed"]) == pytest.approx(parts)
    # emissions = energy_consumed x intensity, as in CodeCarbon
    intensity = rec.record["intensity"]["g_per_kwh"]
    assert float(row["emissions"]) * 1000 == pytest.approx(
        float(row["energy_consumed"]) * intensity, rel=1e-9
    )
    assert row["gpu_count"] == str(len(rec.record["hardware"]["gpus"]))


def test_columns_wattwise_does_not_know_stay_empty_never_zero() -> None:
    store = open_store()
    insert_run(store, "cpu-only", started_at=time.time() - 100)
    gpus = {**HARDWARE, "gpus": [{"name": "NVIDIA H100 80GB HBM3", "memory_mib": 81559}]}
    insert_run(store, "gpu", hardware=gpus)
    by_name = {r["gpu_count"]: r for r in _rows()}
    cpu_only, gpu = by_name["0"], by_name["1"]
    for row in (cpu_only, gpu):
        for column in ("water_consumed", "wue", "longitude", "latitude", "codecarbon_version"):
            assert row[column] == "", column
        # memory measured by another meter than the DRAM model: no utilisation claimed
        assert row["ram_utilization_percent"] == "" and row["ram_used_gb"] == ""
    assert float(cpu_only["gpu_utilization_percent"]) == 0.0  # no GPU: none used
    assert gpu["gpu_utilization_percent"] == ""  # GPUs, utilisation not sampled
    assert gpu["gpu_model"] == "1 x NVIDIA H100 80GB HBM3"


def test_a_dram_counter_or_a_job_election_leaves_memory_use_empty() -> None:
    store = open_store()
    run_id = insert_run(store, "r")
    rec = store.get_run(run_id)
    cpu = rec.components[0]
    counter = type(cpu)(component="dram", energy_j=10.0, machine_energy_j=100.0, band_j=1.0,
                        method="measured", meter="cpu-rapl", source="RAPL",
                        info={"attribution": wattwise.tracking.ATTRIBUTION["dram"]})  # fmt: skip
    elected = type(cpu)(component="dram", energy_j=100.0, machine_energy_j=100.0,
                        band_j=1.0, method="model", meter="dram-model", source="model",
                        info={"attribution": "whole node: this rank won"})  # fmt: skip
    model = type(cpu)(component="dram", energy_j=25.0, machine_energy_j=100.0, band_j=1.0,
                      method="model", meter="dram-model", source="model",
                      info={"attribution": wattwise.tracking.ATTRIBUTION["dram"]})  # fmt: skip
    for comp, util in ((counter, ""), (elected, ""), (model, 25.0)):
        rec.components = [cpu, comp]
        row = codecarbon_row(rec, project_name="p")
        assert row["ram_utilization_percent"] == util
    assert row["ram_used_gb"] == pytest.approx(0.25 * HARDWARE["ram_gb"])
