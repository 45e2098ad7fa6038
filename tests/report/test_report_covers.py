"""Reports, the SCI boundary and the HF card say what a modelled energy figure covers."""

from __future__ import annotations

from report_support import spin

import wattwise
from wattwise.meters import CpuModelMeter, DramModelMeter
from wattwise.report import build_report, hf_card
from wattwise.store import open_store


def test_modelled_run_states_its_scope_and_band_meaning_everywhere() -> None:
    # Real model meters (no fakes): what they record is what the reports must repeat.
    with wattwise.track(
        "covers", meters=[CpuModelMeter(), DramModelMeter()], interval_s=0.05
    ) as run:
        spin(0.3)
    store = open_store()
    record = store.get_run(run.id).record
    cpu = record["meters"]["cpu-model"]
    assert cpu["details"]["covers"].startswith("host wall-power share")
    assert "90 % interval of host wall power" in cpu["band_source"]
    assert "out of sample" in cpu["band_source"]
    assert "Memory alone is not measured" in record["meters"]["dram-model"]["band_source"]

    report = build_report(store, run=run.id)
    line = next(x for x in report.includes if x.startswith("Estimated cpu-model energy"))
    assert "fans, disks and power-supply losses" in line and "dram-model covers memory" in line
    assert report.sci is not None
    assert any("Estimated cpu-model energy" in x for x in report.sci.boundary["included"])
    section = hf_card(report).section
    assert "What estimated energy covers" in section
    assert "measures at the wall" in section  # Markdown-escaped: SPECpower\\_ssj2008
