"""SCI against hand-computed examples (not the spec's worked examples, which have slips)."""

from __future__ import annotations

import json

import pytest
from report_support import insert_run

from wattwise.cli import main
from wattwise.exceptions import InvalidParameterError, RunNotFoundError
from wattwise.report import cloud_instance_embodied_kg, compute_sci, server_embodied_kg
from wattwise.store import RunRecord, open_store

T0 = 1_800_000_000.0


def _runs(*ids: str) -> list[RunRecord]:
    store = open_store()
    return [store.get_run(i) for i in ids]


def test_user_overrides_by_hand() -> None:
    # E = 7.2 MJ = 2 kWh at 100 g/kWh -> O = 200 g.
    # M = 876 kg x (1 h / (1 y x 8760 h)) x 0.5 = 876000 g / 8760 x 0.5 = 50 g.
    # SCI = (200 + 50) / 25 = 10 g per unit.
    store = open_store()
    run = insert_run(store, "a", energy_j=7.2e6, intensity=100.0, duration_s=3600,
                     started_at=T0)  # fmt: skip
    sci = compute_sci(_runs(run), functional_unit="1k inferences", count=25, te_kgco2e=876,
                      lifetime_years=1, share=0.5)  # fmt: skip
    assert sci.energy_kwh == pytest.approx(2.0)
    assert sci.intensity_g_per_kwh == pytest.approx(100.0)
    assert sci.operational_g == pytest.approx(200.0)
    assert sci.embodied_g == pytest.approx(50.0)
    assert sci.sci_g_per_unit == pytest.approx(10.0)
    (share,) = sci.embodied
    assert (share.te_kgco2e, share.time_reserved_h, share.expected_lifespan_h, share.share) == (
        876, pytest.approx(1.0), 8760.0, 0.5)
    assert share.te_source == "user (--te-kgco2e)" and share.share_source == "user (--share)"
    assert [t.symbol for t in sci.terms] == ["E", "I", "O", "M", "R", "SCI"]
    assert sci.terms[-1].unit == "gCO2e per 1k inferences"


def test_ccf_teads_server_model_from_the_recorded_hardware_by_hand() -> None:
    # 1 socket, 32 GB RAM, no GPU: TE = 1000 + (32 - 16) x 1.388 = 1022.208 kg.
    # 2 h on a 4-year life: M = 1022208 g x 2 / 35040 = 58.345205 g.
    # E = 2 kWh at 31 g/kWh: O = 62 g. R = 4 runs: SCI = 120.345205 / 4 = 30.086301 g.
    store = open_store()
    run = insert_run(store, "b", energy_j=7.2e6, intensity=31.0, duration_s=7200, started_at=T0)
    sci = compute_sci(_runs(run), functional_unit="training run", count=4)
    assert sci.operational_g == pytest.approx(62.0)
    assert sci.embodied[0].te_kgco2e == pytest.approx(1022.208)
    assert sci.embodied[0].expected_lifespan_h == 35040.0
    assert sci.embodied_g == pytest.approx(58.345205, rel=1e-7)
    assert sci.sci_g_per_unit == pytest.approx(30.086301, rel=1e-7)
    assert "embodied/embodied_reference_values.csv" in sci.data_files


def test_gpus_sockets_and_pue_by_hand() -> None:
    # 2 sockets, 64 GB, 2 GPUs: TE = 1000 + 100 + 48 x 1.388 + 2 x 150 = 1466.624 kg.
    # 1 h: M = 1466624 / 35040 = 41.855708 g.
    # IT energy 3.6 MJ = 1 kWh, PUE 1.5 -> E = 1.5 kWh; I = 200 -> O = 300 g.
    hardware = {"cpu": {"sockets": 2}, "ram_gb": 64, "gpus": [{"name": "A100"}, {"name": "A100"}]}
    te, source, life, _ = server_embodied_kg(hardware)
    assert te == pytest.approx(1466.624) and life == 4.0
    assert "2 GPU(s)" in source and "1 extra CPU socket" in source
    store = open_store()
    run = insert_run(store, "g", energy_j=3.6e6, intensity=200.0, pue=1.5, duration_s=3600,
                     started_at=T0, hardware=hardware)  # fmt: skip
    sci = compute_sci(_runs(run))
    assert sci.it_energy_kwh == pytest.approx(1.0) and sci.energy_kwh == pytest.approx(1.5)
    assert sci.intensity_g_per_kwh == pytest.approx(200.0)
    assert sci.operational_g == pytest.approx(300.0)
    assert sci.embodied_g == pytest.approx(41.855708, rel=1e-7)
    assert sci.sci_g_per_unit == pytest.approx(341.855708, rel=1e-7)


def test_overlapping_runs_reserve_a_machine_once_and_hosts_add_up() -> None:
    # host A: [0, 1 h] and [0.5 h, 1.5 h] -> TiR 1.5 h; host B: 1 h. TE 876 kg, 1 y, share 1:
    # M = 876000 x 1.5 / 8760 + 876000 x 1 / 8760 = 150 + 100 = 250 g.
    store = open_store()
    a1 = insert_run(store, "a1", duration_s=3600, started_at=T0, host="A")
    a2 = insert_run(store, "a2", duration_s=3600, started_at=T0 + 1800, host="A")
    b1 = insert_run(store, "b1", duration_s=3600, started_at=T0, host="B")
    sci = compute_sci(_runs(a1, a2, b1), te_kgco2e=876, lifetime_years=1)
    by_host = {s.host: s for s in sci.embodied}
    assert by_host["A"].time_reserved_h == pytest.approx(1.5) and by_host["A"].runs == 2
    assert by_host["A"].m_g == pytest.approx(150.0)
    assert by_host["B"].m_g == pytest.approx(100.0)
    assert sci.embodied_g == pytest.approx(250.0)


def test_cloud_instance_table_by_hand() -> None:
    # aws a1.medium: host platform total 1022.21 kg in CCF's table; 2 h at 1/4 share, 4 y:
    # M = 1022210 g x 2 / 35040 x 0.25 = 14.586330 g.
    te, source = cloud_instance_embodied_kg("aws", "a1.medium")
    assert te == pytest.approx(1022.21) and "ccf_coefficients_aws_embodied.csv" in source
    store = open_store()
    run = insert_run(store, "c", duration_s=7200, started_at=T0)
    rec = store.get_run(run)
    rec.record["location"] = {**rec.record["location"], "cloud_provider": "aws",
                              "cloud_region": "eu-west-3"}  # fmt: skip
    sci = compute_sci([rec], instance_type="a1.medium", share=0.25)
    assert sci.embodied_g == pytest.approx(14.586330, rel=1e-6)
    assert "cloud/ccf_coefficients_aws_embodied.csv" in sci.data_files
    # azure names are matched without the Standard_ prefix and underscores
    te_az, _ = cloud_instance_embodied_kg("azure", "Standard_A1_v2")
    assert te_az == pytest.approx(1216.62)


def test_invalid_parameters_are_explained() -> None:
    store = open_store()
    run = insert_run(store, "x")
    runs = _runs(run)
    with pytest.raises(InvalidParameterError, match=r"'count' parameter must be a number > 0"):
        compute_sci(runs, count=0)
    with pytest.raises(InvalidParameterError, match=r"'share' .* \(0, 1\]. Got 1.5"):
        compute_sci(runs, share=1.5)
    with pytest.raises(InvalidParameterError, match=r"Close matches: m5\.large"):
        cloud_instance_embodied_kg("aws", "m5.lrge")
    with pytest.raises(RunNotFoundError, match="No runs"):
        compute_sci([])
    assert compute_sci(runs, te_kgco2e=0).embodied_g == 0.0


def test_sci_command_prints_every_term_with_its_source(capsys: pytest.CaptureFixture[str]) -> None:
    store = open_store()
    insert_run(store, "b", energy_j=7.2e6, intensity=31.0, duration_s=7200, started_at=T0)
    code = main(["sci", "--functional-unit", "training run", "--count", "4"])
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("SCI = (E x I + M) / R = 30.0863 gCO2e per training run")
    for symbol in ("E", "I", "O", "M", "R"):
        assert f"  {symbol} " in out
    assert out.count("source:") == 5
    assert "CCF/Teads rack-server model" in out and "market-based" in out
    assert main(["sci", "--functional-unit", "run", "--count", "2", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["sci_g_per_unit"] == pytest.approx(120.345205 / 2, rel=1e-7)
    assert data["functional_unit"] == {"name": "run", "count": 2.0, "gross_or_effective": "gross",
                                       "source": "user (--functional-unit, --count)"}
    assert main(["sci", "--count", "2"]) == 2  # --functional-unit is required
    assert "--functional-unit" in capsys.readouterr().err
