"""Tiny figures read with an SI prefix for people; machine outputs keep base units."""

from __future__ import annotations

import json

import pytest
from cli_support import call, insert_run

from wattwise._units import carbon, energy


@pytest.mark.parametrize(
    ("joules", "shown"),
    [(4.81e-6, "4.81 µJ"), (0.5, "500 mJ"), (0.000999, "999 µJ"), (2.5e-9, "2.50 nJ"),
     (0.0, "0 J"), (1.0, "1.00 J"), (412.0, "412 J"), (1234.5, "1.23 kJ")],
)  # fmt: skip
def test_energy_uses_a_prefix_below_one_joule(joules: float, shown: str) -> None:
    assert energy(joules) == shown


@pytest.mark.parametrize(
    ("grams", "shown"),
    [(6.33e-8, "63.3 ngCO2e"), (4.2e-6, "4.20 µgCO2e"), (0.206, "206 mgCO2e"),
     (0.0, "0 gCO2e"), (3.0, "3.00 gCO2e"), (1500.0, "1.50 kgCO2e")],
)  # fmt: skip
def test_carbon_uses_a_prefix_below_one_gram(grams: float, shown: str) -> None:
    assert carbon(grams) == shown


def test_show_prints_a_tiny_run_with_prefixes_and_json_in_base_units() -> None:
    energy_j = 4.81e-6
    run_id = insert_run("tiny.py", energy_j=energy_j)
    text = call("show", run_id[:8])
    assert text.code == 0, text.err
    assert "4.81 µJ" in text.out, text.out
    co2e_g = energy_j / 3.6e6 * 31.0  # what insert_run books: FR at 31 g/kWh
    assert carbon(co2e_g) in text.out and carbon(co2e_g).endswith(" ngCO2e")
    assert "0.00000481" not in text.out
    machine = call("show", run_id[:8], "--json")
    assert machine.code == 0, machine.err
    data = json.loads(machine.out)
    assert data["energy_j"] == pytest.approx(energy_j)
    assert data["co2e_g"] == pytest.approx(co2e_g)
