from __future__ import annotations

import csv
import io
import uuid
from pathlib import Path

import pytest
from report_support import insert_run, project_ledger

from wattwise.cli import main
from wattwise.exceptions import InvalidParameterError
from wattwise.report import (
    CODECARBON_COLUMNS,
    build_report,
    hf_card,
    log_to_mlflow,
    render_codecarbon_csv,
    select_runs,
    update_model_card,
)
from wattwise.store import open_store

T0 = 1_800_000_000.0

# -- Hugging Face model card ---------------------------------------------------------


def test_hf_card_parses_with_huggingface_hub_and_is_in_grams() -> None:
    hub = pytest.importorskip("huggingface_hub")
    project_ledger()
    report = build_report(open_store())
    card = hf_card(report, training_type="pre-training")
    parsed = hub.ModelCard(card.to_markdown())
    block = parsed.data.co2_eq_emissions
    assert set(block) == {"emissions", "source", "training_type", "geographical_location",
                          "hardware_used"}  # fmt: skip
    assert block["emissions"] == pytest.approx(report.headline.co2e_g, rel=1e-5)  # grams
    assert block["training_type"] == "pre-training"
    assert block["geographical_location"] == "France"
    assert block["source"].startswith("wattwise 0.1.0 (cpu estimated")
    assert "Electricity Maps yearly 2025" in block["source"]
    assert "CPU only: 1 x Intel(R) Xeon(R) Processor" in block["hardware_used"]
    # ModelCardData takes it through **kwargs and writes it back unchanged
    data = hub.ModelCardData(license="apache-2.0", co2_eq_emissions=block)
    assert data.to_dict()["co2_eq_emissions"] == block
    # the body says what the number includes
    assert "| Embodied carbon included in `emissions` | no |" in card.section
    assert "Data-centre overhead (PUE) included in `emissions` | yes, but PUE 1.0" in card.section
    assert "| Runs counted (failed and tuning runs included) | 11 (1 crashed, 2 failed," in (
        card.section)


def test_hf_card_can_include_embodied_and_rejects_unknown_training_types() -> None:
    store = open_store()
    insert_run(store, "r", energy_j=7.2e6, intensity=31.0, duration_s=7200, started_at=T0)
    report = build_report(store)
    with_m = hf_card(report, include_embodied=True)
    assert report.sci is not None
    assert with_m.co2_eq_emissions["emissions"] == pytest.approx(62.0 + 58.345205, rel=1e-5)
    assert "| Embodied carbon included in `emissions` | yes |" in with_m.section
    with pytest.raises(InvalidParameterError, match=r"'training_type' parameter must be one of"):
        hf_card(report, training_type="pretraining")


def test_hf_card_merges_into_an_existing_model_card(tmp_path: Path) -> None:
    hub = pytest.importorskip("huggingface_hub")
    store = open_store()
    insert_run(store, "r", energy_j=3.6e6, intensity=50.0)
    readme = tmp_path / "README.md"
    readme.write_text("---\nlicense: apache-2.0\nlibrary_name: transformers\n---\n\n# My model\n\n"
                      "Trained on digits.\n", encoding="utf-8")  # fmt: skip
    card = hf_card(build_report(store))
    update_model_card(readme, card)
    update_model_card(readme, card)  # twice: the section is replaced, not duplicated
    text = readme.read_text(encoding="utf-8")
    meta = hub.metadata_load(readme)
    assert meta is not None
    assert meta["license"] == "apache-2.0" and meta["library_name"] == "transformers"
    assert meta["co2_eq_emissions"]["emissions"] == pytest.approx(50.0)
    assert "# My model" in text and "Trained on digits." in text
    assert text.count("wattwise:environmental-impact:start") == 1
    new = tmp_path / "new" / "README.md"
    new.parent.mkdir()
    update_model_card(new, card)
    assert hub.metadata_load(new)["co2_eq_emissions"]["emissions"] == pytest.approx(50.0)


def test_export_hf_card_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = open_store()
    run = insert_run(store, "r", energy_j=3.6e6, intensity=50.0)
    assert main(["export", "--format", "hf-card", run[:8]]) == 0
    out = capsys.readouterr().out
    assert out.startswith("---\nco2_eq_emissions:\n  emissions: 50.0\n")
    target = tmp_path / "card.md"
    assert main(["export", "--format", "hf-card", run[:8], "-o", str(target)]) == 0
    assert target.read_text(encoding="utf-8") == out
    readme = tmp_path / "README.md"
    readme.write_text("# x\n", encoding="utf-8")
    assert main(["export", "--format", "hf-card", "--into", str(readme)]) == 0
    assert "co2_eq_emissions = 50 g" in capsys.readouterr().out


# -- CodeCarbon emissions.csv -------------------------------------------------------------


def test_codecarbon_csv_has_codecarbon_columns_and_units() -> None:
    store = open_store()
    run_id = insert_run(store, "r", energy_j=7.2e6, intensity=31.0, duration_s=7200,
                        started_at=T0, pue=1.2)  # fmt: skip
    text = render_codecarbon_csv(select_runs(store).counted, project_name="digits")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert tuple(rows[0]) == CODECARBON_COLUMNS and len(rows) == 1
    row = rows[0]
    # 2 kWh x PUE 1.2 x 31 g/kWh = 74.4 g = 0.0744 kg (CodeCarbon's emissions are in kg)
    assert float(row["emissions"]) == pytest.approx(0.0744)
    assert float(row["emissions_rate"]) == pytest.approx(0.0744 / 7200)  # kg/s
    # kWh, with the PUE applied as CodeCarbon applies it: 2 kWh x 1.2
    assert float(row["cpu_energy"]) == pytest.approx(2.4)
    assert float(row["energy_consumed"]) == pytest.approx(2.4)
    assert float(row["cpu_power"]) == pytest.approx(1000.0)  # W = 7.2 MJ / 7200 s
    assert float(row["ram_energy"]) == 0.0 and float(row["pue"]) == 1.2
    assert row["run_id"] == str(uuid.UUID(hex=run_id)) and row["project_name"] == "digits"
    assert row["country_iso_code"] == "FRA" and row["country_name"] == "France"
    assert row["on_cloud"] == "N" and row["tracking_mode"] == "process"
    assert row["timestamp"] == "2027-01-15T10:00:00"  # end: T0 + 7200 s, UTC
    assert row["ram_total_size"] == "32.0" and row["cpu_count"] == "8"


def test_export_codecarbon_command_writes_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = open_store()
    insert_run(store, "r1")
    insert_run(store, "r2", status="crashed")
    target = tmp_path / "emissions.csv"
    assert main(["export", "--format", "codecarbon-csv", "-o", str(target)]) == 0
    rows = list(csv.DictReader(io.StringIO(target.read_text(encoding="utf-8"))))
    assert len(rows) == 2 and rows[0]["project_name"] == "project"
    assert "Wrote" in capsys.readouterr().out


# -- MLflow --------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_mlflow_export_reads_back_with_mlflow_client(tmp_path: Path) -> None:
    pytest.importorskip("mlflow")
    pytest.importorskip("sqlalchemy")
    from mlflow.tracking import MlflowClient

    store = open_store()
    run_id = insert_run(store, "train", energy_j=7.2e6, intensity=31.0, duration_s=7200,
                        started_at=T0, tags=["demo"], params={"lr": 0.1, "layers": [64, 32]},
                        metrics={"val_acc": 0.9},
                        flops={"flops_total": 7.2e12, "samples_total": 3600})  # fmt: skip
    failed = insert_run(store, "boom", status="failed", started_at=T0 + 10_000)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    done = log_to_mlflow(store, select_runs(store).counted, tracking_uri=uri,
                         experiment_name="green")  # fmt: skip
    assert [d.wattwise_run_id for d in done] == [run_id, failed] and all(d.created for d in done)
    client = MlflowClient(tracking_uri=uri)
    got = client.get_run(done[0].mlflow_run_id)
    m = got.data.metrics
    assert m["wattwise/total_energy_j"] == pytest.approx(7.2e6)  # 2 kWh
    assert m["wattwise/total_co2e_g"] == pytest.approx(62.0)
    assert m["wattwise/total_energy_j/cpu"] == pytest.approx(7.2e6)
    assert m["wattwise/flops_per_j"] == pytest.approx(1e6)
    assert m["wattwise/samples_per_j"] == pytest.approx(3600 / 7.2e6)
    assert m["val_acc"] == pytest.approx(0.9)
    tags = got.data.tags
    assert tags["wattwise.run_id"] == run_id and tags["mlflow.runName"] == "train"
    assert tags["wattwise.tag.demo"] == "true" and "Electricity Maps" in tags[
        "wattwise.intensity_source"]
    assert "embodied excluded" in tags["wattwise.boundary"]
    assert got.data.params == {"lr": "0.1", "layers": "[64, 32]"}
    assert got.info.status == "FINISHED" and got.info.start_time == int(T0 * 1000)
    assert got.info.end_time == int((T0 + 7200) * 1000)
    assert client.get_run(done[1].mlflow_run_id).info.status == "FAILED"
    # exporting again updates the same MLflow runs instead of adding new ones
    again = log_to_mlflow(store, select_runs(store).counted, tracking_uri=uri,
                          experiment_name="green")  # fmt: skip
    assert [d.mlflow_run_id for d in again] == [d.mlflow_run_id for d in done]
    assert not any(d.created for d in again)
    exp = client.get_experiment_by_name("green")
    assert len(client.search_runs([exp.experiment_id])) == 2


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_export_mlflow_command_defaults_next_to_the_ledger(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("mlflow")
    pytest.importorskip("sqlalchemy")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    store = open_store()
    insert_run(store, "r")
    assert main(["export", "--format", "mlflow"]) == 0
    out = capsys.readouterr().out
    assert "(created)" in out and ".wattwise/mlflow.db" in out
    assert Path(".wattwise/mlflow.db").exists()
