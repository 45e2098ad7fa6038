"""The model card's emissions in fixed-point notation: the Hub reads 4.5e-06 as 4.5 g."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from report_support import insert_run

from wattwise.cli import main
from wattwise.report import build_report, hf_card, update_model_card
from wattwise.report._hf_card import fixed_point
from wattwise.store import open_store

#: 1 J at 31 g/kWh and PUE 1.0: 1 / 3.6e6 kWh x 31 g/kWh.
ONE_JOULE_G = 31.0 / 3.6e6


@pytest.mark.parametrize(
    ("value", "text"),
    [(4.51359e-06, "0.00000451359"), (8.61111111e-06, "0.00000861111"), (50.0, "50.0"),
     (0.0, "0.0"), (120.345205, "120.345"), (123456789.0, "123457000.0"),
     (1e-12, "0.000000000001")],
)  # fmt: skip
def test_fixed_point_keeps_six_significant_digits_without_an_exponent(
    value: float, text: str
) -> None:
    assert fixed_point(value) == text
    assert float(text) == pytest.approx(value, rel=1e-5)


def test_a_tiny_footprint_is_written_fixed_point_in_yaml_and_table() -> None:
    store = open_store()
    insert_run(store, "tiny", energy_j=1.0, intensity=31.0)
    card = hf_card(build_report(store))
    assert card.co2_eq_emissions["emissions"] == pytest.approx(ONE_JOULE_G, rel=1e-5)
    yaml = card.yaml()
    assert "  emissions: 0.00000861111\n" in yaml
    assert not re.search(r"emissions: [-+.0-9]*e", yaml)
    assert "| Carbon emitted (`co2_eq_emissions.emissions`) | 0.00000861111 gCO2e |" in (
        card.section
    )
    # what the Hub's own parser makes of it: the same number, in grams
    hub = pytest.importorskip("huggingface_hub")
    parsed = hub.ModelCard(card.to_markdown()).data.co2_eq_emissions
    assert parsed["emissions"] == pytest.approx(ONE_JOULE_G, rel=1e-5)


def test_merging_into_an_existing_card_keeps_the_fixed_point_text(tmp_path: Path) -> None:
    hub = pytest.importorskip("huggingface_hub")
    store = open_store()
    insert_run(store, "tiny", energy_j=1.0, intensity=31.0)
    readme = tmp_path / "README.md"
    readme.write_text("---\nlicense: apache-2.0\nemissions: 1e-06\n---\n\n# Model\n",
                      encoding="utf-8")  # fmt: skip
    update_model_card(readme, hf_card(build_report(store)))
    text = readme.read_text(encoding="utf-8")
    block = text.split("co2_eq_emissions:", 1)[1].split("\n---", 1)[0]
    assert "  emissions: 0.00000861111\n" in block
    assert "e-" not in block.split("source:")[0]
    assert "emissions: 1e-06" in text  # another key of the same name is the user's: untouched
    meta = hub.metadata_load(readme)
    assert meta is not None
    assert meta["co2_eq_emissions"]["emissions"] == pytest.approx(ONE_JOULE_G, rel=1e-5)


def test_export_command_writes_fixed_point(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = open_store()
    insert_run(store, "tiny", energy_j=1.0, intensity=31.0)
    readme = tmp_path / "README.md"
    readme.write_text("# x\n", encoding="utf-8")
    assert main(["export", "--format", "hf-card", "--into", str(readme)]) == 0
    assert "co2_eq_emissions = 0.00000861111 g" in capsys.readouterr().out
    assert "  emissions: 0.00000861111\n" in readme.read_text(encoding="utf-8")
